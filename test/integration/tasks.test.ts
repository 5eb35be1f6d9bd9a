import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreateTaskInput } from '../../src/modules/tasks/schemas.js';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, TaskBody } from '../helpers/bodies.js';

let t: TestApp;
let alice: SessionBody;
let bob: SessionBody;

beforeAll(async () => {
  t = await createTestApp();
  alice = await register(t.app);
  bob = await register(t.app);
});
afterAll(() => t.close());

const create = async (s: SessionBody, body: CreateTaskInput) => {
  const res = await as(t.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<TaskBody>();
};

describe('task CRUD', () => {
  it('creates with defaults, Location and ETag', async () => {
    const res = await as(t.app, alice.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'Write report' } satisfies CreateTaskInput });
    expect(res.statusCode).toBe(201);
    const task = res.json<TaskBody>();
    expect(task).toMatchObject({ title: 'Write report', description: null, status: 'todo', priority: 'medium', dueAt: null, tags: [], completedAt: null, version: 1 });
    expect(res.headers.location).toBe(`/v1/tasks/${task.id}`);
    expect(res.headers.etag).toBe('"1"');
    expect(task.createdAt).toBe(task.updatedAt);
  });

  it('reads a task with ETag and answers 304 to If-None-Match', async () => {
    const task = await create(alice, { title: 'Read me' });
    const get = as(t.app, alice.accessToken);
    const res = await get({ method: 'GET', url: `/v1/tasks/${task.id}` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(task);
    expect(res.headers['cache-control']).toContain('private');
    expect(res.headers.vary).toContain('Authorization');
    const again = await get({ method: 'GET', url: `/v1/tasks/${task.id}`, headers: { 'if-none-match': res.headers.etag as string } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const stale = await get({ method: 'GET', url: `/v1/tasks/${task.id}`, headers: { 'if-none-match': '"999"' } });
    expect(stale.statusCode).toBe(200);
  });

  it('patches partially, bumps version, sets and clears completedAt', async () => {
    const task = await create(alice, { title: 'Patch me', tags: ['a'] });
    const req = as(t.app, alice.accessToken);
    const done = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { status: 'done' } });
    expect(done.statusCode).toBe(200);
    const d = done.json<TaskBody>();
    expect(d).toMatchObject({ title: 'Patch me', status: 'done', tags: ['a'], version: 2 });
    expect(d.completedAt).not.toBeNull();
    expect(done.headers.etag).toBe('"2"');
    // staying done keeps the original completion time
    const still = (await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'Renamed', status: 'done' } })).json<TaskBody>();
    expect(still.completedAt).toBe(d.completedAt);
    expect(still.version).toBe(3);
    const reopened = (await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { status: 'in_progress', description: 'x', dueAt: '2030-01-01T00:00:00Z' } })).json<TaskBody>();
    expect(reopened).toMatchObject({ status: 'in_progress', completedAt: null, description: 'x', dueAt: '2030-01-01T00:00:00.000Z', version: 4 });
    const cleared = (await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { description: null, dueAt: null } })).json<TaskBody>();
    expect(cleared).toMatchObject({ description: null, dueAt: null, version: 5 });
  });

  it('creates a task already done with completedAt set', async () => {
    const task = await create(alice, { title: 'Done already', status: 'done' });
    expect(task.completedAt).toBe(task.createdAt);
  });

  it('PATCH with a stale If-Match is 412 and changes nothing; a current one succeeds', async () => {
    const task = await create(alice, { title: 'Guarded' });
    const req = as(t.app, alice.accessToken);
    await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'v2' } });
    const stale = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, headers: { 'if-match': '"1"' }, payload: { title: 'lost update' } });
    expect(stale.statusCode).toBe(412);
    expect(stale.headers['content-type']).toContain('application/problem+json');
    const now = (await req({ method: 'GET', url: `/v1/tasks/${task.id}` })).json<TaskBody>();
    expect(now).toMatchObject({ title: 'v2', version: 2 });
    const ok = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, headers: { 'if-match': '"2"' }, payload: { title: 'v3' } });
    expect(ok.statusCode).toBe(200);
    const weak = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, headers: { 'if-match': 'W/"3"' }, payload: { title: 'weak' } });
    expect(weak.statusCode).toBe(412);
    const star = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, headers: { 'if-match': '*' }, payload: { title: 'any' } });
    expect(star.statusCode).toBe(200);
  });

  it('two concurrent PATCHes with the same If-Match: one 200, one 412', async () => {
    const task = await create(alice, { title: 'Race' });
    const req = as(t.app, alice.accessToken);
    const results = await Promise.all(
      ['first', 'second'].map((title) => req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, headers: { 'if-match': '"1"' }, payload: { title } })),
    );
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 412]);
    const final = (await req({ method: 'GET', url: `/v1/tasks/${task.id}` })).json<TaskBody>();
    expect(final.version).toBe(2);
  });

  it('deletes, then the task is gone', async () => {
    const task = await create(alice, { title: 'Delete me' });
    const req = as(t.app, alice.accessToken);
    expect((await req({ method: 'DELETE', url: `/v1/tasks/${task.id}`, headers: { 'if-match': '"7"' } })).statusCode).toBe(412);
    expect((await req({ method: 'DELETE', url: `/v1/tasks/${task.id}` })).statusCode).toBe(204);
    expect((await req({ method: 'GET', url: `/v1/tasks/${task.id}` })).statusCode).toBe(404);
    expect((await req({ method: 'DELETE', url: `/v1/tasks/${task.id}` })).statusCode).toBe(404);
  });

  it('deduplicates tags', async () => {
    const task = await create(alice, { title: 'Tags', tags: ['x', 'y', 'x'] });
    expect(task.tags).toEqual(['x', 'y']);
  });
});

describe('ownership (BOLA)', () => {
  it("another user's task is a 404 identical to a missing one, for every verb", async () => {
    const task = await create(alice, { title: 'Private' });
    const missing = '01900000-0000-7000-8000-000000000000';
    const byBob = as(t.app, bob.accessToken);
    for (const [method, payload] of [['GET'], ['PATCH', { title: 'mine now' }], ['DELETE']] as const) {
      const theirs = await byBob({ method, url: `/v1/tasks/${task.id}`, ...(payload ? { payload } : {}) });
      const none = await byBob({ method, url: `/v1/tasks/${missing}`, ...(payload ? { payload } : {}) });
      expect(theirs.statusCode).toBe(404);
      const strip = (b: string) => ({ ...(JSON.parse(b) as object), instance: undefined, requestId: undefined });
      expect(strip(theirs.body)).toEqual(strip(none.body));
    }
    const list = (await byBob({ method: 'GET', url: '/v1/tasks?limit=100' })).json<PageBody>();
    expect(list.data.map((x) => x.id)).not.toContain(task.id);
    const still = (await as(t.app, alice.accessToken)({ method: 'GET', url: `/v1/tasks/${task.id}` })).json<TaskBody>();
    expect(still).toMatchObject({ title: 'Private', version: 1 });
  });
});
