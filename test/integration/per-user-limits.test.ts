// What one user may own: webhooks (WEBHOOKS_PER_USER_MAX, one per url) and tasks
// (TASKS_PER_USER_MAX). Past a cap a create answers 409 problem details; other users and the
// user's existing data are unaffected, and deleting frees a place.
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody } from '../helpers/bodies.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOKS_PER_USER_MAX: '3', TASKS_PER_USER_MAX: '3' } });
});
afterAll(() => t.close());

const hookUrl = (name: string) => `http://127.0.0.1:9/${name}`;

function expectConflict(res: LightMyRequestResponse, code: string): ProblemBody {
  expect(res.statusCode, res.body).toBe(409);
  expect(res.headers['content-type']).toContain('application/problem+json');
  const body = res.json<ProblemBody>();
  expect(body).toMatchObject({ type: `urn:task-api:problem:${code}`, title: 'Conflict', status: 409 });
  return body;
}

describe('webhooks per user', () => {
  it('refuses a second webhook for the same url with 409 naming url, on create and on PATCH; other users may use it', async () => {
    const ann = await register(t.app);
    const bob = await register(t.app);
    const req = as(t.app, ann.accessToken);
    const first = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('same'), events: ['task.created'] } });
    expect(first.statusCode).toBe(201);

    const again = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('same'), events: ['task.deleted'] } });
    const problem = expectConflict(again, 'webhook-exists');
    expect(problem.errors?.map((e) => e.field)).toEqual(['url']);

    const other = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('other'), events: ['task.created'] } });
    expect(other.statusCode).toBe(201);
    const otherId = other.json<{ id: string }>().id;
    const moved = await req({ method: 'PATCH', url: `/v1/webhooks/${otherId}`, payload: { url: hookUrl('same') } });
    expect(expectConflict(moved, 'webhook-exists').errors?.map((e) => e.field)).toEqual(['url']);
    // unchanged by the refused PATCH; a PATCH that keeps its own url is fine
    const kept = await req({ method: 'PATCH', url: `/v1/webhooks/${otherId}`, payload: { url: hookUrl('other'), active: false } });
    expect(kept.statusCode).toBe(200);
    expect(kept.json<{ url: string; active: boolean }>()).toMatchObject({ url: hookUrl('other'), active: false });

    const bobs = await as(t.app, bob.accessToken)({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('same'), events: ['task.created'] } });
    expect(bobs.statusCode).toBe(201);
    const list = (await req({ method: 'GET', url: '/v1/webhooks' })).json<PageBody<{ url: string }>>();
    expect(list.data.map((w) => w.url).sort()).toEqual([hookUrl('other'), hookUrl('same')]);
  });

  it('refuses the webhook past WEBHOOKS_PER_USER_MAX with 409; deleting one frees a place', async () => {
    const ann = await register(t.app);
    const req = as(t.app, ann.accessToken);
    const ids: string[] = [];
    for (const name of ['a', 'b', 'c']) {
      const res = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl(name), events: ['task.created'] } });
      expect(res.statusCode).toBe(201);
      ids.push(res.json<{ id: string }>().id);
    }
    const over = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('d'), events: ['task.created'] } });
    expect(expectConflict(over, 'webhook-limit').detail).toContain('3');
    expect((await req({ method: 'GET', url: '/v1/webhooks' })).json<PageBody>().data).toHaveLength(3);

    // another user is not affected
    const bob = await register(t.app);
    expect((await as(t.app, bob.accessToken)({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('d'), events: ['task.created'] } })).statusCode).toBe(201);

    expect((await req({ method: 'DELETE', url: `/v1/webhooks/${ids[0]}` })).statusCode).toBe(204);
    expect((await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('d'), events: ['task.created'] } })).statusCode).toBe(201);
    expectConflict(await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('e'), events: ['task.created'] } }), 'webhook-limit');
  });

  it('concurrent creates cannot pass the cap', async () => {
    const ann = await register(t.app);
    const req = as(t.app, ann.accessToken);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl(`race-${i}`), events: ['task.created'] } })),
    );
    const statuses = results.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    expect(statuses.filter((s) => s === 409)).toHaveLength(9);
    expect((await req({ method: 'GET', url: '/v1/webhooks' })).json<PageBody>().data).toHaveLength(3);
  });
});

describe('embedded (PGlite)', () => {
  it('caps webhooks and tasks the same way', async () => {
    const e = await createTestApp({ embedded: true, env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOKS_PER_USER_MAX: '2', TASKS_PER_USER_MAX: '2' } });
    try {
      const req = as(e.app, (await register(e.app)).accessToken);
      for (const name of ['a', 'b']) {
        expect((await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl(name), events: ['task.created'] } })).statusCode).toBe(201);
        expect((await req({ method: 'POST', url: '/v1/tasks', payload: { title: name } })).statusCode).toBe(201);
      }
      expectConflict(await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('a'), events: ['task.created'] } }), 'webhook-limit');
      expectConflict(await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('c'), events: ['task.created'] } }), 'webhook-limit');
      expectConflict(await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'c' } }), 'task-limit');
      const [first] = (await req({ method: 'GET', url: '/v1/webhooks' })).json<PageBody<{ id: string }>>().data;
      expect((await req({ method: 'DELETE', url: `/v1/webhooks/${first!.id}` })).statusCode).toBe(204);
      expectConflict(await req({ method: 'POST', url: '/v1/webhooks', payload: { url: hookUrl('a'), events: ['task.created'] } }), 'webhook-exists');
    } finally {
      await e.close();
    }
  });
});

describe('tasks per user', () => {
  it('refuses the task past TASKS_PER_USER_MAX with 409 and keeps the others; deleting one frees a place', async () => {
    const ann = await register(t.app);
    const req = as(t.app, ann.accessToken);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await req({ method: 'POST', url: '/v1/tasks', payload: { title: `task ${i}` } });
      expect(res.statusCode).toBe(201);
      ids.push(res.json<{ id: string }>().id);
    }
    const over = await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'one too many' } });
    expect(expectConflict(over, 'task-limit').detail).toContain('3');
    const list = (await req({ method: 'GET', url: '/v1/tasks' })).json<PageBody<{ title: string }>>();
    expect(list.data.map((x) => x.title).sort()).toEqual(['task 0', 'task 1', 'task 2']);

    const bob = await register(t.app);
    expect((await as(t.app, bob.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'bob' } })).statusCode).toBe(201);

    expect((await req({ method: 'DELETE', url: `/v1/tasks/${ids[0]}` })).statusCode).toBe(204);
    expect((await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'in its place' } })).statusCode).toBe(201);
    expectConflict(await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'again too many' } }), 'task-limit');
  });

  it('holds the cap exactly under concurrent creates: 3 of 8 answer 201, no row or event for the others, and the count stays true', async () => {
    const ann = await register(t.app);
    const req = as(t.app, ann.accessToken);
    const res = await Promise.all(Array.from({ length: 8 }, (_, i) => req({ method: 'POST', url: '/v1/tasks', payload: { title: `race ${i}` } })));
    const codes = res.map((r) => r.statusCode).sort();
    expect(codes).toEqual([201, 201, 201, 409, 409, 409, 409, 409]);
    const raw = t.database.raw;
    const [rows] = await raw.query<{ n: number }>('select count(*)::int as n from tasks where user_id = $1', [ann.user.id]);
    const [events] = await raw.query<{ n: number }>(
      "select count(*)::int as n from outbox where user_id = $1 and type = 'task.created'",
      [ann.user.id],
    );
    const [counted] = await raw.query<{ tasks: number }>('select tasks from task_counts where user_id = $1', [ann.user.id]);
    expect({ rows: rows?.n, events: events?.n, counted: counted?.tasks }).toEqual({ rows: 3, events: 3, counted: 3 });

    const first = res.find((r) => r.statusCode === 201)!.json<{ id: string }>().id;
    expect((await req({ method: 'DELETE', url: `/v1/tasks/${first}` })).statusCode).toBe(204);
    const [after] = await raw.query<{ tasks: number }>('select tasks from task_counts where user_id = $1', [ann.user.id]);
    expect(after?.tasks).toBe(2);
  });
});
