// The response cache on the real Redis: hits and misses, conditional GET, invalidation on every
// write path, two instances sharing one Redis, stampede protection, and the race where a slow
// reader would store old data.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisResponseCache } from '../../src/infra/cache/redis.js';
import type { CreateTaskInput } from '../../src/modules/tasks/schemas.js';
import { as, createTestApp, register, registerAdmin, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody, TaskBody } from '../helpers/bodies.js';

let one: TestApp;
let two: TestApp;
let truth: TestApp;

beforeAll(async () => {
  one = await createTestApp();
  two = await createTestApp({ sharing: one });
  // The same database with caching off: what any read must agree with.
  truth = await createTestApp({ sharing: one, env: { CACHE_ENABLED: 'false' } });
});
afterAll(async () => {
  await truth.close();
  await two.close();
  await one.close();
});

const get = (t: TestApp, s: SessionBody, url: string, headers: Record<string, string> = {}) =>
  as(t.app, s.accessToken)({ method: 'GET', url, headers });

async function seed(s: SessionBody, n: number): Promise<TaskBody[]> {
  const out: TaskBody[] = [];
  for (let i = 0; i < n; i++) {
    const body: CreateTaskInput = {
      title: `task ${i} ${i % 3 === 0 ? 'invoice' : 'errand'}`,
      priority: (['low', 'medium', 'high', 'urgent'] as const)[i % 4],
      tags: i % 2 ? ['work'] : ['home'],
      dueAt: i % 5 === 0 ? null : new Date(Date.UTC(2030, 0, 1 + i)).toISOString(),
    };
    const res = await as(one.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: body });
    out.push(res.json<TaskBody>());
  }
  return out;
}

const SHAPES = [
  '/v1/tasks',
  '/v1/tasks?limit=5',
  '/v1/tasks?sort=dueAt&limit=4',
  '/v1/tasks?sort=-priority&limit=3',
  '/v1/tasks?status=todo&limit=4',
  '/v1/tasks?tag=work&sort=updatedAt',
  '/v1/tasks?q=invoice',
  '/v1/tasks?dueAfter=2030-01-05T00:00:00Z&sort=-dueAt',
];

/** Every page of a shape, following nextCursor. */
async function allPages(t: TestApp, s: SessionBody, url: string): Promise<string[]> {
  const bodies: string[] = [];
  let next: string | null = url;
  while (next) {
    const res = await get(t, s, next);
    expect(res.statusCode).toBe(200);
    bodies.push(res.body);
    const cursor = res.json<PageBody>().nextCursor;
    next = cursor ? `${url}${url.includes('?') ? '&' : '?'}cursor=${cursor}` : null;
  }
  return bodies;
}

describe('response cache', () => {
  it('misses, then hits with the same body and ETag; private and varying by Authorization', async () => {
    const s = await register(one.app);
    await seed(s, 3);
    const first = await get(one, s, '/v1/tasks?limit=2');
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await get(one, s, '/v1/tasks?limit=2');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toBe(first.body);
    expect(second.headers.etag).toBe(first.headers.etag);
    for (const r of [first, second]) {
      expect(r.headers['cache-control']).toContain('private');
      expect(r.headers.vary).toContain('Authorization');
      expect(r.headers['content-type']).toContain('application/json');
    }
    // The same query written differently is the same entry (defaults and order normalised).
    const same = await get(one, s, '/v1/tasks?sort=-createdAt&limit=2');
    expect(same.headers['x-cache']).toBe('HIT');
  });

  it('answers If-None-Match with 304 whether the entry came from the cache or the database', async () => {
    const s = await register(one.app);
    const [task] = await seed(s, 1);
    const miss = await get(one, s, '/v1/tasks?limit=7');
    expect(miss.headers['x-cache']).toBe('MISS');
    const etag = miss.headers.etag as string;
    const cached = await get(one, s, '/v1/tasks?limit=7', { 'if-none-match': etag });
    expect([cached.statusCode, cached.headers['x-cache'], cached.body]).toEqual([304, 'HIT', '']);
    // a different instance, cold for this key? no: it shares Redis, so it is a hit there too
    const elsewhere = await get(two, s, '/v1/tasks?limit=7', { 'if-none-match': etag });
    expect(elsewhere.statusCode).toBe(304);
    // from the database (caching off) the ETag is the same and the answer too
    const fromDb = await get(truth, s, '/v1/tasks?limit=7', { 'if-none-match': etag });
    expect([fromDb.statusCode, fromDb.headers['x-cache']]).toEqual([304, 'MISS']);
    const item = await get(one, s, `/v1/tasks/${task!.id}`);
    expect(item.headers.etag).toBe('"1"');
    const itemCached = await get(one, s, `/v1/tasks/${task!.id}`, { 'if-none-match': '"1"' });
    expect([itemCached.statusCode, itemCached.headers['x-cache']]).toEqual([304, 'HIT']);
  });

  it('every write path retires the cached lists and items of that user, on another instance at once', async () => {
    const s = await register(one.app);
    const tasks = await seed(s, 12);
    const other = await register(one.app);
    await seed(other, 2);
    const req = as(one.app, s.accessToken);
    const writes: [string, () => Promise<number>][] = [
      ['create', async () => (await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'new invoice', tags: ['work'] } })).statusCode],
      ['patch', async () => (await req({ method: 'PATCH', url: `/v1/tasks/${tasks[1]!.id}`, payload: { status: 'done', title: 'patched invoice' } })).statusCode],
      ['patch with If-Match', async () => (await req({ method: 'PATCH', url: `/v1/tasks/${tasks[2]!.id}`, headers: { 'if-match': '"1"' }, payload: { dueAt: null, priority: 'urgent' } })).statusCode],
      ['delete', async () => (await req({ method: 'DELETE', url: `/v1/tasks/${tasks[3]!.id}` })).statusCode],
    ];
    for (const [name, write] of writes) {
      // Warm every page of every shape, and one item, on instance two.
      for (const shape of SHAPES) await allPages(two, s, shape);
      await get(two, s, `/v1/tasks/${tasks[1]!.id}`);
      expect((await get(two, s, '/v1/tasks')).headers['x-cache'], name).toBe('HIT');
      expect([200, 201, 204]).toContain(await write());
      for (const shape of SHAPES) {
        expect(await allPages(two, s, shape), `${name}: ${shape}`).toEqual(await allPages(truth, s, shape));
      }
      const item = await get(two, s, `/v1/tasks/${tasks[1]!.id}`);
      expect(item.body, name).toBe((await get(truth, s, `/v1/tasks/${tasks[1]!.id}`)).body);
    }
  });

  it('deleting the account (self or by an admin) retires its cached tasks', async () => {
    for (const byAdmin of [false, true]) {
      const s = await register(one.app);
      const [task] = await seed(s, 2);
      expect((await get(two, s, '/v1/tasks')).statusCode).toBe(200);
      expect((await get(two, s, `/v1/tasks/${task!.id}`)).statusCode).toBe(200);
      expect((await get(two, s, `/v1/tasks/${task!.id}`)).headers['x-cache']).toBe('HIT');
      if (byAdmin) {
        const admin = await registerAdmin(one);
        expect((await as(one.app, admin.accessToken)({ method: 'DELETE', url: `/v1/users/${s.user.id}` })).statusCode).toBe(204);
      } else {
        expect((await as(one.app, s.accessToken)({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);
      }
      // The tasks module applies user.deleted (the relay's delivery, here at once): the tasks go,
      // and so do their cached answers.
      await one.deliverAccountEvents();
      // The access token still verifies until it expires; no cached answer outlives the account:
      // both go past the cache to the service, which says the account is gone.
      for (const url of ['/v1/tasks', `/v1/tasks/${task!.id}`]) {
        const gone = await get(two, s, url);
        expect(gone.statusCode, url).toBe(401);
        expect(gone.json<ProblemBody>().type, url).toBe('urn:task-api:problem:account-gone');
        expect(gone.headers['x-cache'], url).toBeUndefined();
      }
    }
  });

  it('users never see each other\u2019s cached responses', async () => {
    const a = await register(one.app);
    const b = await register(one.app);
    const [ta] = await seed(a, 1);
    await get(one, a, '/v1/tasks');
    await get(one, a, `/v1/tasks/${ta!.id}`);
    const bList = await get(one, b, '/v1/tasks');
    expect(bList.json<PageBody>().data).toEqual([]);
    expect((await get(one, b, `/v1/tasks/${ta!.id}`)).statusCode).toBe(404);
  });

  it('200 concurrent GETs of a cold key cost at most 2 database queries', async () => {
    const s = await register(one.app);
    await seed(s, 5);
    const before = one.database.queryCount();
    const results = await Promise.all(Array.from({ length: 200 }, () => get(one, s, '/v1/tasks?sort=priority&limit=3')));
    const queries = one.database.queryCount() - before;
    expect(results.every((r) => r.statusCode === 200 && r.body === results[0]!.body)).toBe(true);
    expect(queries).toBeGreaterThanOrEqual(1);
    expect(queries).toBeLessThanOrEqual(2);
    expect(results.filter((r) => r.headers['x-cache'] === 'MISS').length).toBeLessThanOrEqual(2);
  });

  it('counts hits and misses', async () => {
    const s = await register(one.app);
    const { hits, misses } = one.app.cacheStats;
    await get(one, s, '/v1/tasks?limit=9');
    await get(one, s, '/v1/tasks?limit=9');
    await get(one, s, '/v1/tasks?limit=9');
    expect(one.app.cacheStats.misses - misses).toBe(1);
    expect(one.app.cacheStats.hits - hits).toBe(2);
  });
});

describe('generations', () => {
  const log = pino({ level: 'silent' });

  it('a slow reader cannot store old data under the new generation', async () => {
    const cache = new RedisResponseCache(one.redis!, 300, log);
    const before = await cache.lookup('user-x', 'list');
    expect(before?.entry).toBeNull();
    await cache.invalidateUser('user-x'); // a write commits while the reader is in the database
    await cache.store(before!.storeKey, { body: '"old"', etag: '"old"' }, 300);
    expect((await cache.lookup('user-x', 'list'))?.entry).toBeNull();
  });

  it('a lost generation counter (evicted, expired) never brings old entries back', async () => {
    const cache = new RedisResponseCache(one.redis!, 300, log);
    const first = await cache.lookup('user-y', 'list');
    await cache.store(first!.storeKey, { body: '"v1"', etag: '"1"' }, 300);
    expect((await cache.lookup('user-y', 'list'))?.entry?.body).toBe('"v1"');
    await one.redis!.del('cache:gen:user-y');
    expect((await cache.lookup('user-y', 'list'))?.entry).toBeNull();
    // and an invalidation of a missing counter seeds a fresh one rather than a small number
    await one.redis!.del('cache:gen:user-y');
    await cache.invalidateUser('user-y');
    expect(Number(await one.redis!.get('cache:gen:user-y'))).toBeGreaterThan(1e12);
  });
});

// Pages whose body passes CACHE_MAX_ENTRY_BYTES: served in full from the database every time,
// never stored. Ten tasks with 1500-character descriptions make a 20-task page of about 17 KB;
// a 1-task page stays far under the 4 KiB cap.
const BIG = { CACHE_MAX_ENTRY_BYTES: '4096' };
const LONG = 'a long description, '.repeat(75);

async function seedLong(app: TestApp['app'], s: SessionBody, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await as(app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: `long ${i}`, description: LONG } });
    expect(res.statusCode).toBe(201);
  }
}

/** The response cache's entries in this app's Redis, without its prefix. */
async function entryKeys(t: TestApp): Promise<string[]> {
  const prefix = t.config.redis.keyPrefix;
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await t.redis!.scan(cursor, 'MATCH', `${prefix}cache:r:*`, 'COUNT', 500);
    cursor = next;
    out.push(...keys.map((k) => k.slice(prefix.length)));
  } while (cursor !== '0');
  return out;
}

describe('entries larger than CACHE_MAX_ENTRY_BYTES (Redis)', () => {
  let capped: TestApp;
  let plain: TestApp;
  beforeAll(async () => {
    capped = await createTestApp({ env: BIG });
    plain = await createTestApp({ sharing: capped, env: { CACHE_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await plain.close();
    await capped.close();
  });

  it('are served correctly, MISS every time, and never written to Redis; smaller pages still are', async () => {
    const s = await register(capped.app);
    await seedLong(capped.app, s, 10);
    const truth = await get(plain, s, '/v1/tasks?limit=20');
    expect(Buffer.byteLength(truth.body)).toBeGreaterThan(4096);
    for (let i = 0; i < 3; i++) {
      const res = await get(capped, s, '/v1/tasks?limit=20');
      expect([res.statusCode, res.headers['x-cache']]).toEqual([200, 'MISS']);
      expect(res.body).toBe(truth.body);
      expect(res.headers.etag).toBe(truth.headers.etag);
    }
    // Concurrent requests share one read, and still say MISS: nothing was cached.
    const together = await Promise.all(Array.from({ length: 10 }, () => get(capped, s, '/v1/tasks?limit=20')));
    expect(together.map((r) => [r.statusCode, r.headers['x-cache'], r.body === truth.body])).toEqual(Array(10).fill([200, 'MISS', true]));
    // Conditional requests work without the cache.
    const etag = truth.headers.etag as string;
    expect((await get(capped, s, '/v1/tasks?limit=20', { 'if-none-match': etag })).statusCode).toBe(304);
    expect(await entryKeys(capped)).toEqual([]);

    const small = await get(capped, s, '/v1/tasks?limit=1');
    expect(Buffer.byteLength(small.body)).toBeLessThan(4096);
    expect(small.headers['x-cache']).toBe('MISS');
    expect((await get(capped, s, '/v1/tasks?limit=1')).headers['x-cache']).toBe('HIT');
    const keys = await entryKeys(capped);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toContain('limit=1');
    expect((await get(capped, s, '/v1/tasks?limit=20')).headers['x-cache']).toBe('MISS');
  });
});

describe('embedded (in-process) cache', () => {
  it('serves pages larger than CACHE_MAX_ENTRY_BYTES correctly and never caches them', async () => {
    const t = await createTestApp({ embedded: true, env: BIG });
    try {
      const s = await register(t.app);
      await seedLong(t.app, s, 10);
      const bodies: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await get(t, s, '/v1/tasks?limit=20');
        expect([res.statusCode, res.headers['x-cache']]).toEqual([200, 'MISS']);
        expect(Buffer.byteLength(res.body)).toBeGreaterThan(4096);
        bodies.push(res.body);
      }
      const page = JSON.parse(bodies[0]!) as PageBody;
      expect(page.data.map((x) => x.title)).toEqual(Array.from({ length: 10 }, (_, i) => `long ${9 - i}`));
      expect(page.data.every((x) => x.description === LONG)).toBe(true);
      expect(new Set(bodies).size).toBe(1);
      expect((await get(t, s, '/v1/tasks?limit=1')).headers['x-cache']).toBe('MISS');
      expect((await get(t, s, '/v1/tasks?limit=1')).headers['x-cache']).toBe('HIT');
    } finally {
      await t.close();
    }
  });

  it('hits, and is invalidated by writes', async () => {
    const t = await createTestApp({ embedded: true });
    try {
      const s = await register(t.app);
      const req = as(t.app, s.accessToken);
      await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'one' } });
      expect((await req({ method: 'GET', url: '/v1/tasks' })).headers['x-cache']).toBe('MISS');
      expect((await req({ method: 'GET', url: '/v1/tasks' })).headers['x-cache']).toBe('HIT');
      await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'two' } });
      const after = await req({ method: 'GET', url: '/v1/tasks' });
      expect(after.headers['x-cache']).toBe('MISS');
      expect(after.json<PageBody>().data.map((x) => x.title)).toEqual(['two', 'one']);
    } finally {
      await t.close();
    }
  });
});
