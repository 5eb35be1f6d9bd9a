// The response cache across a Redis outage, on a redis-server this test starts itself (with an
// append-only file, so the restarted server comes back holding the entries and generation it
// had before the outage). Reads keep working from the database, writes during the outage are
// acknowledged, and nothing cached before the outage is served after it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import type { PageBody, TaskBody } from '../helpers/bodies.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';

let dir: string;
let redis: OwnRedis;

let one: TestApp;
let two: TestApp;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'task-api-redis-'));
  redis = await ownRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]);
  await redis.start();
  one = await createTestApp({ env: { REDIS_URL: redis.url } });
  two = await createTestApp({ sharing: one });
});
afterAll(async () => {
  await two?.close();
  await one?.close();
  await redis.kill();
  await rm(dir, { recursive: true, force: true });
});

const titles = (body: string) => (JSON.parse(body) as PageBody).data.map((t) => t.title);

describe('response cache across a Redis outage', () => {
  it('serves from the database while Redis is down and never resurrects entries from before the outage', async () => {
    const s = await register(one.app);
    const req1 = as(one.app, s.accessToken);
    const req2 = as(two.app, s.accessToken);
    const task = (await req1({ method: 'POST', url: '/v1/tasks', payload: { title: 'before' } })).json<TaskBody>();
    for (const req of [req1, req2]) {
      await req({ method: 'GET', url: '/v1/tasks' });
      await req({ method: 'GET', url: `/v1/tasks/${task.id}` });
    }
    expect((await req2({ method: 'GET', url: '/v1/tasks' })).headers['x-cache']).toBe('HIT');

    await redis.kill();

    const during = await req1({ method: 'GET', url: '/v1/tasks' });
    expect([during.statusCode, during.headers['x-cache']]).toEqual([200, 'MISS']);
    const patched = await req1({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'during' } });
    expect(patched.statusCode).toBe(200); // acknowledged although the invalidation could not be sent
    expect(titles((await req1({ method: 'GET', url: '/v1/tasks' })).body)).toEqual(['during']);
    expect(titles((await req2({ method: 'GET', url: '/v1/tasks' })).body)).toEqual(['during']);

    // The server comes back from its append-only file: old entries and old generation included.
    await redis.start();
    for (const req of [req1, req2]) {
      let list = await req({ method: 'GET', url: '/v1/tasks' });
      for (let i = 0; i < 100 && list.headers['x-cache'] !== 'HIT'; i++) {
        expect(list.statusCode).toBe(200);
        expect(titles(list.body)).toEqual(['during']);
        await new Promise((r) => setTimeout(r, 50));
        list = await req({ method: 'GET', url: '/v1/tasks' });
      }
      // Caching again, and only with what is true now.
      expect(list.headers['x-cache']).toBe('HIT');
      expect(titles(list.body)).toEqual(['during']);
      const item = await req({ method: 'GET', url: `/v1/tasks/${task.id}` });
      expect(item.json<TaskBody>().title).toBe('during');
    }
  });
});
