// The whole API, end to end, as one user story. Run on PostgreSQL + Redis, on the embedded stack,
// over HTTP through NGINX in front of a cluster (test/system/cluster.test.ts), and on the tasks
// data sharded over three databases (test/integration/shards.test.ts).
import { expect } from 'vitest';
import type { Database } from '../../src/infra/db/database.js';
import { as, register, registerAdmin, uniqueEmail, type Injector, type SessionBody } from './app.js';

/** An app to walk through (app.inject, or HTTP through NGINX) and its databases. */
export interface ScenarioTarget {
  app: Injector;
  /** Where the accounts are (the identity database when split). */
  database: Database;
  /** Where the tasks are, when not with the accounts (the split topology's tasks database). */
  tasksDatabase?: Database;
  /** Where the tasks are when sharded by owner: every shard's database (an account's tasks are gone from all). */
  tasksDatabases?: readonly Database[];
  /**
   * Brings the account events to their consumers (a test app runs no relay:
   * TestApp.deliverAccountEvents). A deployment's own relay and broker do it by themselves.
   */
  deliverAccountEvents?: () => Promise<unknown>;
}

/**
 * What other services know of an account arrives by its events, a moment after the write:
 * asserts `check` once the events were delivered (a test app), or within a bounded wait.
 */
async function eventually(t: ScenarioTarget, check: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await t.deliverAccountEvents?.();
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function runScenario(t: ScenarioTarget): Promise<void> {
  const { app } = t;
  const email = uniqueEmail('scenario');
  const s1 = await register(app, `  ${email.toUpperCase()} `, 'first password');
  expect(s1.user.email).toBe(email);
  expect(s1.user.role).toBe('user');

  const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'first password' } });
  expect(login.statusCode).toBe(200);
  const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: login.json<SessionBody>().refreshToken } });
  expect(refreshed.statusCode).toBe(200);
  const session = refreshed.json<SessionBody>();
  const req = as(app, session.accessToken);

  const titles = ['Plan sprint', 'Write tests', 'Ship release', 'Fix login bug', 'Review PR'];
  const ids: string[] = [];
  for (const [i, title] of titles.entries()) {
    const res = await req({
      method: 'POST',
      url: '/v1/tasks',
      payload: { title, priority: (['low', 'medium', 'high', 'urgent', 'medium'] as const)[i], tags: i % 2 ? ['work'] : ['home'], description: i === 3 ? 'users cannot log in' : null },
    });
    expect(res.statusCode).toBe(201);
    ids.push(res.json<{ id: string }>().id);
  }
  const page1 = (await req({ method: 'GET', url: '/v1/tasks?limit=2' })).json<{ data: { id: string }[]; nextCursor: string }>();
  expect(page1.data.map((x) => x.id)).toEqual([ids[4], ids[3]]);
  const page2 = (await req({ method: 'GET', url: `/v1/tasks?limit=2&cursor=${page1.nextCursor}` })).json<{ data: { id: string }[] }>();
  expect(page2.data.map((x) => x.id)).toEqual([ids[2], ids[1]]);
  const urgent = (await req({ method: 'GET', url: '/v1/tasks?sort=-priority&limit=1' })).json<{ data: { title: string }[] }>();
  expect(urgent.data[0]!.title).toBe('Fix login bug');
  const work = (await req({ method: 'GET', url: '/v1/tasks?tag=work' })).json<{ data: unknown[] }>();
  expect(work.data).toHaveLength(2);
  const search = (await req({ method: 'GET', url: '/v1/tasks?q=logging' })).json<{ data: { id: string }[] }>();
  expect(search.data.map((x) => x.id)).toEqual([ids[3]]);

  const got = await req({ method: 'GET', url: `/v1/tasks/${ids[0]}` });
  expect((await req({ method: 'GET', url: `/v1/tasks/${ids[0]}`, headers: { 'if-none-match': got.headers.etag as string } })).statusCode).toBe(304);
  const done = await req({ method: 'PATCH', url: `/v1/tasks/${ids[0]}`, headers: { 'if-match': got.headers.etag as string }, payload: { status: 'done' } });
  expect(done.statusCode).toBe(200);
  expect((await req({ method: 'PATCH', url: `/v1/tasks/${ids[0]}`, headers: { 'if-match': got.headers.etag as string }, payload: { status: 'todo' } })).statusCode).toBe(412);
  const doneList = (await req({ method: 'GET', url: '/v1/tasks?status=done' })).json<{ data: { id: string }[] }>();
  expect(doneList.data.map((x) => x.id)).toEqual([ids[0]]);
  expect((await req({ method: 'DELETE', url: `/v1/tasks/${ids[1]}` })).statusCode).toBe(204);

  const other = await register(app);
  expect((await as(app, other.accessToken)({ method: 'GET', url: `/v1/tasks/${ids[0]}` })).statusCode).toBe(404);

  const admin = await registerAdmin(t);
  // The tasks service shows the owner it has heard of (user.created).
  await eventually(t, async () => {
    const all = await as(app, admin.accessToken)({ method: 'GET', url: `/v1/admin/tasks?userId=${session.user.id}` });
    expect(all.statusCode).toBe(200);
    expect(all.json<{ data: { owner: { email: string } }[] }>().data.map((x) => x.owner.email)).toEqual(Array(4).fill(email));
  });
  expect((await as(app, other.accessToken)({ method: 'GET', url: '/v1/admin/tasks' })).statusCode).toBe(403);

  const changed = await req({ method: 'PATCH', url: '/v1/users/me', payload: { name: 'Scenario', password: 'second password', currentPassword: 'first password' } });
  expect(changed.statusCode).toBe(200);
  expect((await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: session.refreshToken } })).statusCode).toBe(401);
  const relog = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'second password' } });
  expect(relog.statusCode).toBe(200);
  const fresh = relog.json<SessionBody>();
  expect((await app.inject({ method: 'POST', url: '/v1/auth/logout', payload: { refreshToken: fresh.refreshToken } })).statusCode).toBe(204);
  expect((await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: fresh.refreshToken } })).statusCode).toBe(401);

  expect((await as(app, fresh.accessToken)({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);
  // The account's tasks go when the tasks service applies user.deleted; its token then gets 401.
  await eventually(t, async () => {
    for (const db of t.tasksDatabases ?? [t.tasksDatabase ?? t.database]) {
      const leftovers = await db.raw.query<{ n: number }>('select count(*)::int as n from tasks where user_id = $1', [session.user.id]);
      expect(leftovers[0]!.n).toBe(0);
    }
    expect((await as(app, fresh.accessToken)({ method: 'GET', url: '/v1/tasks' })).statusCode).toBe(401);
  });
  expect((await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'second password' } })).statusCode).toBe(401);
}
