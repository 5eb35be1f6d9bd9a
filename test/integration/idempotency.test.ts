// Idempotency-Key on authenticated POST and PATCH, on PostgreSQL + Redis and in the embedded mode
// (PGlite + memory): replays, mismatches, concurrency, what is and is not kept, per-user scope,
// expiry, malformed keys, several instances, and a Redis outage (on a redis-server this file
// starts and kills itself; the shared one is never stopped).
import { randomUUID } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fingerprintOf, idOfClaim, scopedKey } from '../../src/http/idempotency.js';
import { TasksRepository } from '../../src/modules/tasks/repository.js';
import { redisKeyOf } from '../../src/infra/idempotency/redis.js';
import { as, createTestApp, register, registerAdmin, uniqueEmail, type SessionBody, type TestApp } from '../helpers/app.js';
import type { ProblemBody, TaskBody } from '../helpers/bodies.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';

const REPLAYED = 'idempotent-replayed';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds (at most ~10 s); for states another request reaches, never for speed. */
async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const count = async (t: TestApp, sql: string, params: unknown[]) => Number((await t.database.raw.query<{ n: number | string }>(sql, params))[0]!.n);
const tasksOf = (t: TestApp, userId: string) => count(t, 'SELECT count(*) AS n FROM tasks WHERE user_id = $1', [userId]);
const eventsOf = (t: TestApp, userId: string) => count(t, "SELECT count(*) AS n FROM outbox WHERE user_id = $1 AND aggregate = 'task'", [userId]);

function keyed(t: TestApp, s: SessionBody) {
  return (key: string | undefined, opts: InjectOptions): Promise<LightMyRequestResponse> =>
    as(t.app, s.accessToken)({ ...opts, headers: { ...opts.headers, ...(key === undefined ? {} : { 'idempotency-key': key }) } });
}

function expectProblem(res: LightMyRequestResponse, status: number, type: string): ProblemBody {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  const body = res.json<ProblemBody & { requestId: string }>();
  expect(body).toMatchObject({ status, type: `urn:task-api:problem:${type}` });
  expect(body.requestId).toBe(res.headers['x-request-id']);
  return body;
}

describe.each([
  { mode: 'PostgreSQL + Redis', embedded: false },
  { mode: 'embedded (PGlite + memory)', embedded: true },
])('Idempotency-Key: $mode', ({ embedded }) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ embedded, env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' } });
    await t.redis?.ping();
  });
  afterAll(() => t.close());

  it('a repeated POST replays status, body, Location and ETag with Idempotent-Replayed; one row, one event', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const key = randomUUID();
    const body = { title: 'Pay the invoice', priority: 'high', tags: ['money'] };
    const first = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expect(first.statusCode).toBe(201);
    expect(first.headers[REPLAYED]).toBeUndefined();

    // The same body with its keys in another order is the same request.
    const again = await send(key, { method: 'POST', url: '/v1/tasks', payload: { tags: ['money'], priority: 'high', title: 'Pay the invoice' } });
    expect(again.statusCode).toBe(201);
    expect(again.headers[REPLAYED]).toBe('true');
    expect(again.body).toBe(first.body);
    for (const h of ['location', 'etag', 'content-type']) expect(again.headers[h], h).toBe(first.headers[h]);
    expect(again.headers['x-request-id']).not.toBe(first.headers['x-request-id']);

    expect(await tasksOf(t, s.user.id)).toBe(1);
    expect(await eventsOf(t, s.user.id)).toBe(1);
  });

  it('the same key with another body, path or method is 422; nothing runs', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const key = randomUUID();
    const created = await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'one' } });
    expect(created.statusCode).toBe(201);
    const task = created.json<TaskBody>();

    expectProblem(await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'two' } }), 422, 'idempotency-key-reused');
    expectProblem(await send(key, { method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'one' } }), 422, 'idempotency-key-reused');
    expectProblem(await send(key, { method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/h', events: ['task.created'] } }), 422, 'idempotency-key-reused');

    expect(await tasksOf(t, s.user.id)).toBe(1);
    expect(await eventsOf(t, s.user.id)).toBe(1);
    const read = await as(t.app, s.accessToken)({ method: 'GET', url: `/v1/tasks/${task.id}` });
    expect(read.json<TaskBody>().version).toBe(1);
  });

  it('a key held by a request in flight is 409 with Retry-After (422 for another request); free again once released', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const key = randomUUID();
    const body = { title: 'in flight' };
    // Another instance's request holding the key, as the store sees it.
    const held = await t.idempotency.claim(scopedKey(s.user.id, key), fingerprintOf('POST', '/v1/tasks', body), 60_000, 86_400);
    if (held.state !== 'claimed') throw new Error('the key should have been free');

    const busy = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expectProblem(busy, 409, 'idempotency-key-in-use');
    expect(busy.headers['retry-after']).toBe('1');
    expectProblem(await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'other' } }), 422, 'idempotency-key-reused');
    expect(await tasksOf(t, s.user.id)).toBe(0);

    await t.idempotency.release(held.claim);
    const ran = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expect(ran.statusCode).toBe(201);
    expect(ran.headers[REPLAYED]).toBeUndefined();
    expect(await tasksOf(t, s.user.id)).toBe(1);
  });

  it('a 400 is not kept: the corrected retry with the same key runs', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const key = randomUUID();
    expectProblem(await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: '' } }), 400, 'validation-error');
    // A body nested deeper than any schema allows is fingerprinted before validation refuses it.
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    expectProblem(await send(key, { method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: deep }), 400, 'validation-error');
    const fixed = await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'fixed' } });
    expect(fixed.statusCode).toBe(201);
    expect(fixed.headers[REPLAYED]).toBeUndefined();
    expect(await tasksOf(t, s.user.id)).toBe(1);
  });

  it('a 5xx releases the claim: the retry runs again', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const key = randomUUID();
    const body = { title: 'explodes once' };
    await t.database.raw.query(`CREATE OR REPLACE FUNCTION idem_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'forced failure'; END $$`);
    await t.database.raw.query('CREATE TRIGGER idem_test_fail BEFORE INSERT ON task_counts FOR EACH ROW EXECUTE FUNCTION idem_test_fail()');
    try {
      const failed = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
      expectProblem(failed, 500, 'internal-error');
    } finally {
      await t.database.raw.query('DROP TRIGGER idem_test_fail ON task_counts');
    }
    const retried = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expect(retried.statusCode).toBe(201);
    expect(retried.headers[REPLAYED]).toBeUndefined();
    expect(await tasksOf(t, s.user.id)).toBe(1);
  });

  it('other 4xx answers are kept and replayed (404)', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const key = randomUUID();
    const url = `/v1/tasks/${randomUUID()}`;
    const missing = await send(key, { method: 'PATCH', url, payload: { title: 'x' } });
    expectProblem(missing, 404, 'not-found');
    const again = await send(key, { method: 'PATCH', url, payload: { title: 'x' } });
    const problem = expectProblem(again, 404, 'not-found');
    expect(again.headers[REPLAYED]).toBe('true');
    expect(problem.detail).toBe(missing.json<ProblemBody>().detail);
  });

  it('keys are per user: another user with the same key runs their own request', async () => {
    const [a, b] = [await register(t.app), await register(t.app)];
    const key = randomUUID();
    const body = { title: 'same key, two users' };
    const ra = await keyed(t, a)(key, { method: 'POST', url: '/v1/tasks', payload: body });
    const rb = await keyed(t, b)(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expect([ra.statusCode, rb.statusCode]).toEqual([201, 201]);
    expect(rb.headers[REPLAYED]).toBeUndefined();
    expect(rb.json<TaskBody>().id).not.toBe(ra.json<TaskBody>().id);
    expect(await tasksOf(t, a.user.id)).toBe(1);
    expect(await tasksOf(t, b.user.id)).toBe(1);
  });

  it('a malformed key is 400 naming the header, and nothing runs; 255 visible characters are fine', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    for (const bad of ['', 'x'.repeat(256), 'cl\u00e9', 'two words', 'tab\there', 'del\u007f']) {
      const res = await send(bad, { method: 'POST', url: '/v1/tasks', payload: { title: 'never' } });
      const problem = expectProblem(res, 400, 'validation-error');
      expect(problem.errors, JSON.stringify(bad)).toEqual([expect.objectContaining({ in: 'header', field: 'idempotency-key' })]);
    }
    expect(await tasksOf(t, s.user.id)).toBe(0);
    const longest = await send('~'.repeat(255), { method: 'POST', url: '/v1/tasks', payload: { title: 'ok' } });
    expect(longest.statusCode).toBe(201);
  });

  it('a replayed PATCH answers the first result, even after later changes, and changes nothing', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const task = (await send(undefined, { method: 'POST', url: '/v1/tasks', payload: { title: 'a' } })).json<TaskBody>();
    const key = randomUUID();
    const first = await send(key, { method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'b' } });
    expect(first.statusCode).toBe(200);
    expect(first.headers.etag).toBe('"2"');
    expect((await send(undefined, { method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'c' } })).statusCode).toBe(200);

    const replay = await send(key, { method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'b' } });
    expect(replay.statusCode).toBe(200);
    expect(replay.headers[REPLAYED]).toBe('true');
    expect(replay.headers.etag).toBe('"2"');
    expect(replay.body).toBe(first.body);
    const now = await as(t.app, s.accessToken)({ method: 'GET', url: `/v1/tasks/${task.id}` });
    expect(now.json<TaskBody>()).toMatchObject({ title: 'c', version: 3 });
    expect(await eventsOf(t, s.user.id)).toBe(3);
  });

  it('covers webhooks, notifications, preferences, the profile and admin changes', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const admin = await registerAdmin(t);
    const calls: [SessionBody, InjectOptions & { method: 'POST' | 'PATCH'; url: string }, number][] = [
      [s, { method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/idem', events: ['task.created'] } }, 201],
      [s, { method: 'POST', url: '/v1/notifications/read-all' }, 204],
      [s, { method: 'PATCH', url: '/v1/users/me/notification-preferences', payload: { email: false } }, 200],
      [s, { method: 'PATCH', url: '/v1/users/me', payload: { name: 'Idem' } }, 200],
      [admin, { method: 'PATCH', url: `/v1/users/${s.user.id}`, payload: { name: 'By admin' } }, 200],
    ];
    for (const [who, opts, status] of calls) {
      const key = randomUUID();
      const first = await keyed(t, who)(key, opts);
      expect(first.statusCode, `${opts.method} ${opts.url}: ${first.body}`).toBe(status);
      const again = await keyed(t, who)(key, opts);
      expect(again.statusCode, `${opts.method} ${opts.url}`).toBe(status);
      expect(again.headers[REPLAYED], `${opts.method} ${opts.url}`).toBe('true');
      expect(again.body).toBe(first.body);
    }
    // The webhook's one-time secret came back in the replay, and there is one webhook.
    const hooks = await send(undefined, { method: 'GET', url: '/v1/webhooks' });
    expect(hooks.json<{ data: unknown[] }>().data).toHaveLength(1);
  });

  it('the public auth routes ignore the header (no user to scope it to)', async () => {
    const key = randomUUID();
    for (const email of [uniqueEmail('idem-reg'), uniqueEmail('idem-reg')]) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/auth/register', headers: { 'idempotency-key': key }, payload: { email, password: 'correct horse battery' } });
      expect(res.statusCode).toBe(201);
      expect(res.headers[REPLAYED]).toBeUndefined();
    }
    const malformed = await t.app.inject({ method: 'POST', url: '/v1/auth/register', headers: { 'idempotency-key': '' }, payload: { email: uniqueEmail('idem-reg'), password: 'correct horse battery' } });
    expect(malformed.statusCode).toBe(201);
  });

  it('a claim whose owner died after its commit is taken over when its lease lapses: the same task, no second row or event', async () => {
    const short = await createTestApp({ embedded, sharing: embedded ? undefined : t, env: { IDEMPOTENCY_LEASE_MS: '1000' } });
    try {
      const s = await register(short.app);
      const key = randomUUID();
      const body = { title: 'made before the crash' };
      // The owner: claims the key, commits the task under the id the claim names, and dies before
      // it can store the answer or release the key.
      const held = await short.idempotency.claim(scopedKey(s.user.id, key), fingerprintOf('POST', '/v1/tasks', body), 1000, 86_400);
      if (held.state !== 'claimed') throw new Error('the key should have been free');
      const made = await new TasksRepository(short.database.db).insert(s.user.id, {
        id: idOfClaim(held.claim),
        title: body.title,
        description: null,
        status: 'todo',
        priority: 'medium',
        dueAt: null,
        tags: [],
      });
      expectProblem(await keyed(short, s)(key, { method: 'POST', url: '/v1/tasks', payload: body }), 409, 'idempotency-key-in-use');
      await sleep(1100);
      const retry = await keyed(short, s)(key, { method: 'POST', url: '/v1/tasks', payload: body });
      expect(retry.statusCode, retry.body).toBe(201);
      expect(retry.json<TaskBody>().id).toBe(made!.id);
      expect(retry.headers.location).toBe(`/v1/tasks/${made!.id}`);
      expect([await tasksOf(short, s.user.id), await eventsOf(short, s.user.id)]).toEqual([1, 1]);
      // The takeover's answer is kept like any other.
      const again = await keyed(short, s)(key, { method: 'POST', url: '/v1/tasks', payload: body });
      expect([again.statusCode, again.headers[REPLAYED], again.json<TaskBody>().id]).toEqual([201, 'true', made!.id]);
      expect(await tasksOf(short, s.user.id)).toBe(1);
    } finally {
      await short.close();
    }
  });

  it('keys expire after IDEMPOTENCY_TTL_SECONDS', async () => {
    const short = await createTestApp({ embedded, env: { IDEMPOTENCY_TTL_SECONDS: '1' } });
    try {
      await short.redis?.ping();
      const s = await register(short.app);
      const send = keyed(short, s);
      const key = randomUUID();
      const body = { title: 'kept one second' };
      const first = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
      expect(first.statusCode).toBe(201);
      // Kept meanwhile: a retry right after the answer replays it.
      expect((await send(key, { method: 'POST', url: '/v1/tasks', payload: body })).headers[REPLAYED]).toBe('true');
      await sleep(1100);
      let later = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
      for (let i = 0; i < 20 && later.headers[REPLAYED] === 'true'; i++) {
        await sleep(100);
        later = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
      }
      expect(later.statusCode).toBe(201);
      expect(later.headers[REPLAYED]).toBeUndefined();
      expect(later.json<TaskBody>().id).not.toBe(first.json<TaskBody>().id);
      expect(await tasksOf(short, s.user.id)).toBe(2);
    } finally {
      await short.close();
    }
  });
});

describe('Idempotency-Key on PostgreSQL and Redis', () => {
  let t: TestApp;
  const extra: TestApp[] = [];
  beforeAll(async () => {
    t = await createTestApp();
    await t.redis!.ping();
  });
  afterEach(async () => {
    for (const x of extra.splice(0).reverse()) await x.close();
  });
  afterAll(() => t.close());

  it('two concurrent requests with one key: one runs (201), the other gets 409 while it does', async () => {
    const s = await register(t.app);
    const send = keyed(t, s);
    const key = randomUUID();
    const body = { title: 'exactly once' };
    const stored = redisKeyOf(scopedKey(s.user.id, key));
    let first!: Promise<LightMyRequestResponse>;
    // The first request is held inside its database write by a lock on the user's task count
    // row (the create's statement counts the task there), after it has claimed the key.
    const second = await t.database.rawTransaction(async (raw) => {
      await raw.query('INSERT INTO task_counts (user_id, tasks) VALUES ($1, 0) ON CONFLICT (user_id) DO UPDATE SET tasks = task_counts.tasks', [s.user.id]);
      first = send(key, { method: 'POST', url: '/v1/tasks', payload: body });
      await until(async () => (await t.redis!.get(stored))?.startsWith('p|') === true, 'the first request to claim the key');
      return send(key, { method: 'POST', url: '/v1/tasks', payload: body });
    });
    expectProblem(second, 409, 'idempotency-key-in-use');
    expect(second.headers['retry-after']).toBe('1');
    const done = await first;
    expect(done.statusCode).toBe(201);
    // Once answered, the next retry replays.
    const third = await send(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expect(third.headers[REPLAYED]).toBe('true');
    expect(third.body).toBe(done.body);
    expect(await tasksOf(t, s.user.id)).toBe(1);
    expect(await eventsOf(t, s.user.id)).toBe(1);
  });

  it('is kept in Redis under the app prefix, with the TTL (24 h by default)', async () => {
    const s = await register(t.app);
    const key = randomUUID();
    expect((await keyed(t, s)(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'ttl' } })).statusCode).toBe(201);
    const stored = redisKeyOf(scopedKey(s.user.id, key));
    const [, found] = await t.redis!.scan('0', 'MATCH', `${t.config.redis.keyPrefix}idem:${s.user.id}:*`, 'COUNT', 1000);
    expect(found).toEqual([`${t.config.redis.keyPrefix}${stored}`]);
    const ttl = await t.redis!.pttl(stored);
    expect(ttl).toBeGreaterThan(86_000_000);
    expect(ttl).toBeLessThanOrEqual(86_400_000);
    expect(await t.redis!.get(stored)).toMatch(/^d\|/);
  });

  it('a key used on one instance replays on another sharing the Redis', async () => {
    const other = await createTestApp({ sharing: t });
    extra.push(other);
    await other.redis!.ping();
    const s = await register(t.app);
    const key = randomUUID();
    const body = { title: 'two instances' };
    const first = await keyed(t, s)(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expect(first.statusCode).toBe(201);
    const again = await keyed(other, s)(key, { method: 'POST', url: '/v1/tasks', payload: body });
    expect(again.statusCode).toBe(201);
    expect(again.headers[REPLAYED]).toBe('true');
    expect(again.body).toBe(first.body);
    expectProblem(await keyed(other, s)(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'else' } }), 422, 'idempotency-key-reused');
    expect(await tasksOf(t, s.user.id)).toBe(1);
  });

  it('a 429 is not kept: the retry after the limit runs', async () => {
    const loose = { points: 1000, duration: 600, blockDuration: 0 };
    const limited = await createTestApp({
      env: {
        RATE_LIMIT_ENABLED: 'true',
        RATE_LIMIT_POLICIES: JSON.stringify({ default: loose, 'auth-ip': loose, 'login-account-ip': loose, 'login-account': loose, 'password-change': { points: 1, duration: 600, blockDuration: 0 } }),
      },
    });
    extra.push(limited);
    await limited.redis!.ping();
    const s = await register(limited.app, uniqueEmail('idem-429'), 'first password 1');
    const send = keyed(limited, s);
    const change1 = await send(randomUUID(), { method: 'PATCH', url: '/v1/users/me', payload: { password: 'second password 2', currentPassword: 'first password 1' } });
    expect(change1.statusCode).toBe(200);
    const key = randomUUID();
    const body = { password: 'third password 3', currentPassword: 'second password 2' };
    expectProblem(await send(key, { method: 'PATCH', url: '/v1/users/me', payload: body }), 429, 'too-many-requests');
    // The window is over (its counter gone): the same key and body now run.
    await limited.redis!.del(`rl:password-change:user:${s.user.id}`);
    const retried = await send(key, { method: 'PATCH', url: '/v1/users/me', payload: body });
    expect(retried.statusCode, retried.body).toBe(200);
    expect(retried.headers[REPLAYED]).toBeUndefined();
  });

  describe('when Redis is down', () => {
    let redis: OwnRedis | undefined;
    afterEach(async () => {
      await redis?.kill();
    });

    it('a write with a key is refused with 503 and Retry-After (nothing runs); without a key it runs; keys work again when Redis returns', async () => {
      const own = (redis = await ownRedis());
      await own.start();
      const app = await createTestApp({ env: { REDIS_URL: own.url } });
      try {
        await app.redis!.ping();
        const s = await register(app.app);
        const send = keyed(app, s);

        await own.kill();
        await until(() => app.redis!.status !== 'ready', 'the client to notice');
        const key = randomUUID();
        const refused = await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'needs the store' } });
        expectProblem(refused, 503, 'service-unavailable');
        expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(await tasksOf(app, s.user.id)).toBe(0);
        const unkeyed = await send(undefined, { method: 'POST', url: '/v1/tasks', payload: { title: 'no key, no store needed' } });
        expect(unkeyed.statusCode).toBe(201);

        await own.start();
        await until(() => app.redis!.status === 'ready', 'the client to reconnect');
        const back = await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'needs the store' } });
        expect(back.statusCode).toBe(201);
        expect((await send(key, { method: 'POST', url: '/v1/tasks', payload: { title: 'needs the store' } })).headers[REPLAYED]).toBe('true');
        expect(await tasksOf(app, s.user.id)).toBe(2);
      } finally {
        // Closing deletes the app's keys: Redis must be up for that, whatever happened above.
        if (app.redis!.status !== 'ready') {
          await own.kill();
          await own.start();
          await until(() => app.redis!.status === 'ready', 'the client to reconnect');
        }
        await app.close();
      }
    });
  });
});
