// Redis response cache. A lookup is one Lua script: read (or seed) the epoch and the user's
// generation, refresh the generation's TTL, and read the entry. The generation is read before
// the database is queried, so a slow reader stores what it read under the generation it saw,
// which a write in between has already retired.
import { randomInt } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import { luaScript, type LuaScript } from '../redis.js';
import { bodyBytes, type CachedResponse, type Lookup, type ResponseCacheStore } from './types.js';

const EPOCH_KEY = 'cache:epoch';
const genKey = (userId: string) => `cache:gen:${userId}`;
// The epoch may expire: it is then seeded afresh, which only retires every entry once more.
const EPOCH_TTL_MS = 30 * 24 * 3600 * 1000;

// A missing epoch or generation (evicted, expired, Redis restarted empty) is seeded with a fresh
// value, never 0 or 1, so entries stored under an older value can never match again.
const seed = () => String(Date.now() * 1000 + randomInt(1000));

const LOOKUP = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1], 'NX')
  epoch = redis.call('GET', KEYS[1])
end
local gen = redis.call('GET', KEYS[2])
if not gen then
  redis.call('SET', KEYS[2], ARGV[1], 'NX')
  gen = redis.call('GET', KEYS[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local key = 'cache:r:' .. epoch .. ':' .. gen .. ':' .. ARGV[4]
return {key, redis.call('GET', ARGV[3] .. key)}`;

const BUMP = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCR', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// An entry is stored as `<etag>\n<body>` (an ETag holds no newline): read back with one indexOf
// instead of parsing a JSON document around a body that is itself JSON. Entries live under
// `cache:r:` (the JSON-wrapped ones of earlier versions were under `cache:e:` and are never read).
const encodeEntry = (e: CachedResponse) => `${e.etag}\n${e.body}`;
function decodeEntry(raw: string): CachedResponse | null {
  const nl = raw.indexOf('\n');
  return nl < 0 ? null : { etag: raw.slice(0, nl), body: raw.slice(nl + 1) };
}

export class RedisResponseCache implements ResponseCacheStore {
  readonly kind = 'redis';
  private readonly prefix: string;
  /** Set when an invalidation may have been lost; the cache is bypassed until the epoch moves on. */
  private suspect = false;
  private repairing: Promise<void> | undefined;
  private connectedBefore = false;
  private readonly lookupScript: LuaScript;
  private readonly bumpScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
    private readonly log: Pick<FastifyBaseLogger, 'warn' | 'info'>,
    /** A body larger than this (UTF-8 bytes) is not stored: one user's huge pages would crowd out everyone's. */
    private readonly maxEntryBytes = 256 * 1024,
  ) {
    this.prefix = redis.options.keyPrefix ?? '';
    this.lookupScript = luaScript(redis, LOOKUP, 2);
    this.bumpScript = luaScript(redis, BUMP, 1);
    // After any reconnect the server may be a restarted one restored from an older snapshot,
    // holding entries newer writes should have retired: retire everything.
    redis.on('ready', () => {
      if (this.connectedBefore) this.suspect = true;
      this.connectedBefore = true;
      if (this.suspect) void this.repair();
    });
    if (redis.status === 'ready') this.connectedBefore = true;
  }

  /** Generations outlive every entry stored under them. */
  private get genTtlMs(): number {
    return this.ttlSeconds * 2 * 1000;
  }

  async lookup(userId: string, key: string): Promise<Lookup | null> {
    if (this.redis.status !== 'ready') return null;
    if (this.suspect) {
      await this.repair();
      if (this.suspect) return null;
    }
    try {
      const [storeKey, raw] = (await this.lookupScript(EPOCH_KEY, genKey(userId), seed(), this.genTtlMs, this.prefix, `${userId}:${key}`)) as [
        string,
        string | null,
      ];
      return { storeKey, entry: raw ? decodeEntry(raw) : null };
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'response cache lookup failed; reading from the database');
      return null;
    }
  }

  async store(storeKey: string, entry: CachedResponse, ttlSeconds: number): Promise<boolean> {
    if (this.redis.status !== 'ready' || this.suspect || bodyBytes(entry.body) > this.maxEntryBytes) return false;
    try {
      await this.redis.set(storeKey, encodeEntry(entry), 'EX', ttlSeconds);
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'response cache store failed');
      return false;
    }
  }

  async invalidateUser(userId: string): Promise<void> {
    try {
      if (this.redis.status !== 'ready') throw new Error(`redis is ${this.redis.status}`);
      await this.bumpScript(genKey(userId), seed(), this.genTtlMs);
    } catch (err) {
      // The write is committed and must not fail; the cache must not serve what it replaced.
      this.suspect = true;
      this.log.warn({ err: (err as Error).message, userId }, 'cache invalidation failed; cache bypassed until the epoch moves on');
    }
  }

  private repair(): Promise<void> {
    this.repairing ??= (async () => {
      try {
        if (this.redis.status !== 'ready') return;
        await this.bumpScript(EPOCH_KEY, seed(), EPOCH_TTL_MS);
        this.suspect = false;
        this.log.info('response cache epoch advanced: every older entry retired');
      } catch {
        // still unreachable: stay suspect, try again on the next lookup or reconnect
      } finally {
        this.repairing = undefined;
      }
    })();
    return this.repairing;
  }
}
