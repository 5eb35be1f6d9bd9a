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
