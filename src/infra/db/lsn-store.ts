// Where each user's last write stands in the primary's WAL, for read-your-writes
// (src/infra/db/router.ts): in Redis, shared by every instance (one GET per routed read), or in
// process memory when there is no Redis (one instance). Entries live a bounded time: once every
// replica that may be read from is past a position, nobody needs it any more.
import type { Redis } from 'ioredis';
import { luaScript, type LuaScript } from '../redis.js';
import { lsnKey, parseLsnKey } from './lsn.js';

export interface UserLsnStore {
  readonly kind: 'redis' | 'memory';
  /**
   * The position of the user's last recorded write: null when none is recorded (or it expired);
   * undefined when it cannot be known now (the store is unreachable, or may have lost a record):
   * the caller then reads on the primary.
   */
  get(userId: string): Promise<bigint | null | undefined>;
  /** Keeps the larger of the stored position and this one. Never throws (see get). */
  record(userId: string, lsn: bigint): Promise<void>;
}


// Two writes of one user on two instances may record out of order: keep the larger position.
// Positions are 16 hex digits, compared as two 32-bit halves (a Lua number is a double: 64 bits
// do not fit; string comparison would follow the server's collation).
const RECORD = `
local function older(a, b)
  local ah, bh = tonumber(string.sub(a, 1, 8), 16), tonumber(string.sub(b, 1, 8), 16)
  if ah ~= bh then return ah < bh end
  return tonumber(string.sub(a, 9, 16), 16) < tonumber(string.sub(b, 9, 16), 16)
end
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) == 16 and not older(cur, ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

export interface LsnStoreOptions {
  /** How long a recorded position is kept. */
  ttlMs: number;
  /**
   * After a record failed, or after Redis reconnected (it may have restarted empty, and other
   * instances' records may have failed meanwhile), positions cannot be trusted for this long:
   * get() answers undefined. Long enough that every replica read from has replayed whatever
   * was written before it began.
   */
  unsureMs: number;
  /**
   * Whose WAL the positions are of, when the process writes to several primaries (a shard's
   * name): positions of different primaries cannot be compared, so each keeps its own keys.
   */
  scope?: string;
}

export class RedisUserLsnStore implements UserLsnStore {
  readonly kind = 'redis';
  private readonly recordScript: LuaScript;
  private unsureUntil = 0;
  private connectedBefore = false;
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    private readonly opts: LsnStoreOptions,
    private readonly log: { warn(obj: object, msg: string): void },
  ) {
    this.recordScript = luaScript(redis, RECORD, 1);
    this.prefix = opts.scope ? `rw:lsn:${opts.scope}:` : 'rw:lsn:';
    redis.on('ready', () => {
      if (this.connectedBefore) this.unsure();
      this.connectedBefore = true;
    });
    if (redis.status === 'ready') this.connectedBefore = true;
  }

  private unsure(): void {
    this.unsureUntil = Date.now() + this.opts.unsureMs;
  }

  async get(userId: string): Promise<bigint | null | undefined> {
    if (this.redis.status !== 'ready' || Date.now() < this.unsureUntil) return undefined;
    try {
      const raw = await this.redis.get(this.prefix + userId);
      if (raw === null) return null;
      return parseLsnKey(raw);
    } catch {
      return undefined;
    }
  }

  async record(userId: string, lsn: bigint): Promise<void> {
    try {
      if (this.redis.status !== 'ready') throw new Error(`redis is ${this.redis.status}`);
      await this.recordScript(this.prefix + userId, lsnKey(lsn), this.opts.ttlMs);
    } catch (err) {
      // The write is committed: it must not fail now. Reads go to the primary until no replica
      // read from can be missing it.
      this.unsure();
      this.log.warn({ err: (err as Error).message }, 'recording a write position failed; reads go to the primary for a while');
    }
  }
}

export class MemoryUserLsnStore implements UserLsnStore {
  readonly kind = 'memory';
  private readonly entries = new Map<string, { lsn: bigint; expires: number }>();
  private sweepAt = 0;

  constructor(private readonly opts: Pick<LsnStoreOptions, 'ttlMs'>) {}

  get(userId: string): Promise<bigint | null> {
    const e = this.entries.get(userId);
    if (!e) return Promise.resolve(null);
    if (e.expires <= Date.now()) {
      this.entries.delete(userId);
      return Promise.resolve(null);
    }
    return Promise.resolve(e.lsn);
  }

  record(userId: string, lsn: bigint): Promise<void> {
    const now = Date.now();
    const cur = this.entries.get(userId);
    const keep = cur && cur.expires > now && cur.lsn > lsn ? cur.lsn : lsn;
    // Re-inserted so that the map stays in expiry order: the sweep stops at the first live one.
    this.entries.delete(userId);
    this.entries.set(userId, { lsn: keep, expires: now + this.opts.ttlMs });
    if (now >= this.sweepAt) {
      this.sweepAt = now + this.opts.ttlMs;
      for (const [id, e] of this.entries) {
        if (e.expires > now) break;
        this.entries.delete(id);
      }
    }
    return Promise.resolve();
  }

  /** Users with a recorded position (tests). */
  get size(): number {
    return this.entries.size;
  }
}
