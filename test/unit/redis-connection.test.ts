// createRedis: one server by URL, or the master found through Sentinels; the same timeouts,
// retries and key prefix either way. Nothing listens where these point: each is closed at once.
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/infra/redis.js';

const opened: Redis[] = [];
const open = (r: Redis) => {
  r.on('error', () => undefined);
  opened.push(r);
  return r;
};
afterEach(() => {
  for (const r of opened.splice(0)) r.disconnect();
});

describe('createRedis', () => {
  it('connects through the Sentinels to the master of the given name', () => {
    const r = open(createRedis({ sentinels: [{ host: '127.0.0.1', port: 1 }], sentinelMaster: 'cache', password: 'pw', keyPrefix: 'p:' }));
    expect(r.options).toMatchObject({
      sentinels: [{ host: '127.0.0.1', port: 1 }],
      name: 'cache',
      role: 'master',
      password: 'pw',
      keyPrefix: 'p:',
      connectTimeout: 2000,
      commandTimeout: 1000,
      maxRetriesPerRequest: 2,
      failoverDetector: true,
    });
    expect(r.options.reconnectOnError?.(new Error('READONLY You can\'t write against a read only replica.'))).toBe(2);
    expect(r.options.reconnectOnError?.(new Error('ERR other'))).toBe(false);
    expect(r.options.sentinelRetryStrategy?.(100)).toBe(2000);
  });

  it('connects to one server by URL as before', () => {
    const r = open(createRedis({ url: 'redis://127.0.0.1:1', keyPrefix: 'p:' }));
    expect(r.options).toMatchObject({ host: '127.0.0.1', port: 1, keyPrefix: 'p:', commandTimeout: 1000 });
    expect(r.options.sentinels ?? null).toBeNull();
  });

  it('needs a URL or Sentinels', () => {
    expect(() => createRedis({ keyPrefix: 'p:' })).toThrow(/url or sentinels/);
  });
});
