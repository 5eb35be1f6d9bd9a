// Redis refresh-token store. Each operation is one Lua script, so two instances refreshing the
// same token at once cannot both win.
import type { Redis } from 'ioredis';
import { luaScript, type LuaScript } from '../redis.js';
import type { RefreshTokenStore, RotateResult, TokenOwner } from './types.js';

// Keys (under the client's keyPrefix): rt:<hash> -> hash {u, f, g, s}; rtf:<family> -> revoked
// marker; rtg:<user> -> generation, bumped to revoke all of a user's tokens.
// ARGV[1] = ttl in ms, ARGV[2] = key prefix (for keys derived inside the script).
const ISSUE = `
local gen = redis.call('GET', ARGV[2] .. 'rtg:' .. ARGV[3]) or '0'
redis.call('HSET', KEYS[1], 'u', ARGV[3], 'f', ARGV[4], 'g', gen, 's', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if gen ~= '0' then redis.call('PEXPIRE', ARGV[2] .. 'rtg:' .. ARGV[3], ARGV[1]) end
return 1`;

const ROTATE = `
local t = redis.call('HMGET', KEYS[1], 'u', 'f', 'g', 's')
if not t[1] then return {'unknown'} end
local fam = ARGV[2] .. 'rtf:' .. t[2]
local gen = redis.call('GET', ARGV[2] .. 'rtg:' .. t[1]) or '0'
if redis.call('EXISTS', fam) == 1 or gen ~= t[3] then return {'revoked', t[1], t[2]} end
if t[4] == '1' then
  redis.call('SET', fam, '1', 'PX', ARGV[1])
  return {'reused', t[1], t[2]}
end
redis.call('HSET', KEYS[1], 's', '1')
redis.call('HSET', KEYS[2], 'u', t[1], 'f', t[2], 'g', gen, 's', '0')
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if gen ~= '0' then redis.call('PEXPIRE', ARGV[2] .. 'rtg:' .. t[1], ARGV[1]) end
return {'ok', t[1], t[2]}`;

const REVOKE_FAMILY = `
local t = redis.call('HMGET', KEYS[1], 'u', 'f')
if not t[1] then return nil end
redis.call('SET', ARGV[2] .. 'rtf:' .. t[2], '1', 'PX', ARGV[1])
return {t[1], t[2]}`;

const REVOKE_USER = `
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`;

export class RedisTokenStore implements RefreshTokenStore {
  readonly kind = 'redis';
  private readonly prefix: string;

  private readonly scripts: Record<'issue' | 'rotate' | 'revokeFamily' | 'revokeUser', LuaScript>;

  constructor(private readonly redis: Redis) {
    this.prefix = redis.options.keyPrefix ?? '';
    this.scripts = {
      issue: luaScript(redis, ISSUE, 1),
      rotate: luaScript(redis, ROTATE, 2),
      revokeFamily: luaScript(redis, REVOKE_FAMILY, 1),
      revokeUser: luaScript(redis, REVOKE_USER, 1),
    };
  }

  async issue(hash: string, owner: TokenOwner, ttlSeconds: number): Promise<void> {
    await this.scripts.issue(`rt:${hash}`, ttlSeconds * 1000, this.prefix, owner.userId, owner.familyId);
  }

  async rotate(oldHash: string, newHash: string, ttlSeconds: number): Promise<RotateResult> {
    const r = (await this.scripts.rotate(`rt:${oldHash}`, `rt:${newHash}`, ttlSeconds * 1000, this.prefix)) as string[];
    const [status, userId, familyId] = r;
    if (status === 'unknown') return { ok: false, reason: 'unknown' };
    const owner = { userId: userId!, familyId: familyId! };
    if (status === 'ok') return { ok: true, owner };
    if (status === 'reused') return { ok: false, reason: 'reused', owner };
    return { ok: false, reason: 'revoked' };
  }

  async revokeFamily(hash: string, ttlSeconds: number): Promise<TokenOwner | null> {
    const r = (await this.scripts.revokeFamily(`rt:${hash}`, ttlSeconds * 1000, this.prefix)) as string[] | null;
    return r ? { userId: r[0]!, familyId: r[1]! } : null;
  }

  async revokeUser(userId: string, ttlSeconds: number): Promise<void> {
    await this.scripts.revokeUser(`rtg:${userId}`, ttlSeconds * 1000);
  }

  async close(): Promise<void> {
    // The Redis connection is shared and closed by its owner.
  }
}
