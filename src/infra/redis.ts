import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';

export interface RedisOptions {
  url: string;
  keyPrefix: string;
}

/** One shared connection per process; reconnects by itself (the seed's backoff, capped at 2 s). */
export function createRedis(opts: RedisOptions): Redis {
  return new Redis(opts.url, {
    keyPrefix: opts.keyPrefix,
    retryStrategy: (times) => Math.min(times * 50, 2000),
    maxRetriesPerRequest: 2,
    connectTimeout: 2000,
    // A Redis that stops answering without closing the connection must not hold requests up.
    commandTimeout: 1000,
    lazyConnect: false,
  });
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
