import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';

export interface RedisOptions {
  /** One server (REDIS_URL). */
  url?: string;
  /** Or the master `sentinelMaster`, found through these Sentinels (REDIS_SENTINELS). */
  sentinels?: { host: string; port: number }[];
  sentinelMaster?: string;
  password?: string;
  keyPrefix: string;
}

const COMMON = {
  retryStrategy: (times: number) => Math.min(times * 50, 2000),
  maxRetriesPerRequest: 2,
  connectTimeout: 2000,
  // A Redis that stops answering without closing the connection must not hold requests up.
  commandTimeout: 1000,
  lazyConnect: false,
} as const;

/**
 * One shared connection per process; reconnects by itself (the seed's backoff, capped at 2 s).
 * With Sentinels, each (re)connect asks them where the master is, so the connection follows the
 * master across a failover: the Sentinels' +switch-master closes it at once (failoverDetector),
 * and a write answered READONLY (the server we reached was demoted) reconnects too.
 */
export function createRedis(opts: RedisOptions): Redis {
  if (opts.sentinels && opts.sentinels.length > 0) {
    return new Redis({
      ...COMMON,
      keyPrefix: opts.keyPrefix,
      sentinels: opts.sentinels,
      name: opts.sentinelMaster ?? 'task-api',
      role: 'master',
      ...(opts.password ? { password: opts.password } : {}),
      // Between sweeps over every Sentinel: the same backoff as the connection's own.
      sentinelRetryStrategy: (times: number) => Math.min(times * 50, 2000),
      failoverDetector: true,
      // 2: reconnect (to the master the Sentinels name now) and resend the command.
      reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
    });
  }
  if (!opts.url) throw new Error('createRedis: a url or sentinels are needed');
  return new Redis(opts.url, { ...COMMON, keyPrefix: opts.keyPrefix });
}

export type LuaScript = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/**
 * A Lua script called by its SHA1 (EVALSHA): the body crosses the wire, and is hashed by Redis,
 * only when the server does not know it yet (NOSCRIPT after a restart or SCRIPT FLUSH). Keys get
 * the connection's keyPrefix like any other command's.
 */
export function luaScript(redis: Redis, lua: string, numberOfKeys: number): LuaScript {
  const sha = createHash('sha1').update(lua).digest('hex');
  return async (...keysThenArgs) => {
    try {
      return await redis.evalsha(sha, numberOfKeys, ...keysThenArgs);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(lua, numberOfKeys, ...keysThenArgs);
    }
  };
}
