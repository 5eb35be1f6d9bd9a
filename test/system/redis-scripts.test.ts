// Lua scripts run by SHA1; a server that does not know a script (restarted, SCRIPT FLUSH) gets its
// body once, and keys carry the connection's prefix. A Redis server of this file's own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, luaScript } from '../../src/infra/redis.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';

let server: OwnRedis;
beforeAll(async () => {
  server = await ownRedis();
  await server.start();
});
afterAll(async () => {
  await server.kill();
});

describe('luaScript', () => {
  it('sends the body only when the server lacks the script, and prefixes keys', async () => {
    const redis = createRedis({ url: server.url, keyPrefix: 'p:' });
    const admin = createRedis({ url: server.url, keyPrefix: '' });
    try {
      const incr = luaScript(redis, "return redis.call('INCRBY', KEYS[1], ARGV[1])", 1);
      expect(await incr('n', 2)).toBe(2);
      expect(await incr('n', 3)).toBe(5);
      expect(await admin.get('p:n')).toBe('5');
      await admin.script('FLUSH');
      expect(await incr('n', 1)).toBe(6);
      expect(await incr('n', 1)).toBe(7);
      // EVAL ran twice (first call and after the flush); EVALSHA every time.
      const stats = await admin.info('commandstats');
      expect(stats).toMatch(/cmdstat_eval:calls=2,/);
      expect(stats).toMatch(/cmdstat_evalsha:calls=4,/);
    } finally {
      redis.disconnect();
      admin.disconnect();
    }
  });
});
