// Redis idempotency store, shared by every instance. Each step is one Lua script: the claim reads
// and sets in one step (SET NX PX of the in-flight marker, or the value that is already there);
// completing and releasing compare the stored marker with the caller's first, so only the
// claim's owner can replace or free it.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { luaScript, type LuaScript } from '../redis.js';
import { decodeValue, doneValue, inFlightValue, type Claim, type ClaimResult, type IdempotencyStore, type StoredResponse } from './types.js';

/** The Redis key of a store key (under the connection's keyPrefix, like every other key). */
export const redisKeyOf = (key: string) => `idem:${key}`;
/** The key's seed (see Claim.seed), beside it: it outlives a lapsed claim. */
const seedKeyOf = (key: string) => `idem-seed:${key}`;

// KEYS[1] the key, KEYS[2] its seed; ARGV: the in-flight marker, the lease (ms), now (ms), the
// TTL (ms). Answers {the value already there} or {'', the seed}.
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if v then return {v} end
local seed = redis.call('GET', KEYS[2])
if not seed then
  seed = ARGV[3]
  redis.call('SET', KEYS[2], seed, 'PX', ARGV[4])
end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
return {'', seed}`;

const COMPLETE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class RedisIdempotencyStore implements IdempotencyStore {
  readonly kind = 'redis';
  private readonly scripts: Record<'claim' | 'complete' | 'release', LuaScript>;

  constructor(private readonly redis: Redis) {
    this.scripts = { claim: luaScript(redis, CLAIM, 2), complete: luaScript(redis, COMPLETE, 1), release: luaScript(redis, RELEASE, 1) };
  }

  async claim(key: string, fingerprint: string, leaseMs: number, ttlSeconds: number): Promise<ClaimResult> {
    // Not ready (down, reconnecting): fail now rather than queue the command behind a reconnect.
    this.ensureReady();
    const token = randomBytes(12).toString('base64url');
    const marker = inFlightValue({ token, fingerprint });
    const [existing, seed] = (await this.scripts.claim(redisKeyOf(key), seedKeyOf(key), marker, leaseMs, Date.now(), ttlSeconds * 1000)) as [string, string?];
    return existing === '' ? { state: 'claimed', claim: { key, token, fingerprint, seed: Number(seed) } } : decodeValue(existing);
  }

  async complete(claim: Claim, response: StoredResponse, ttlSeconds: number): Promise<boolean> {
    this.ensureReady();
    const done = (await this.scripts.complete(redisKeyOf(claim.key), inFlightValue(claim), doneValue(claim.fingerprint, response), ttlSeconds * 1000)) as number;
    return done === 1;
  }

  async release(claim: Claim): Promise<void> {
    this.ensureReady();
    await this.scripts.release(redisKeyOf(claim.key), inFlightValue(claim));
  }

  private ensureReady(): void {
    if (this.redis.status !== 'ready') throw new Error(`redis is ${this.redis.status}`);
  }
}
