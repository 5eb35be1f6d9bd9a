// HTTP behaviour and failure paths: request validation, body parsing and limits, problem
// details, security headers, health, OpenAPI and docs, and a failing database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody, TaskBody } from '../helpers/bodies.js';

interface Res {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
}

let t: TestApp;
let alice: SessionBody;

beforeAll(async () => {
  t = await createTestApp();
  alice = await register(t.app);
});
afterAll(() => t?.close());

const req = (s: SessionBody = alice) => as(t.app, s.accessToken);

function expectProblem(res: Res, status: number): ProblemBody {
  expect(res.statusCode, res.body).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(res.body) as ProblemBody;
  expect(problem).toMatchObject({ status, type: expect.stringMatching(/\S/), title: expect.stringMatching(/\S/) });
  return problem;
}

function expectFieldError(res: Res, field: string, where = 'body'): ProblemBody {
  const problem = expectProblem(res, 400);
  expect(problem.errors, res.body).toEqual(expect.arrayContaining([expect.objectContaining({ in: where, field })]));
  return problem;
}

async function listAll(s: SessionBody = alice): Promise<TaskBody[]> {
  const res = await req(s)({ method: 'GET', url: '/v1/tasks?limit=100' });
  expect(res.statusCode).toBe(200);
  return res.json<PageBody>().data;
}

async function createTask(body: Record<string, unknown>): Promise<TaskBody> {
  const res = await req()({ method: 'POST', url: '/v1/tasks', payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<TaskBody>();
}

describe('POST /v1/tasks validation', () => {
  const cases: [string, unknown, string][] = [
    ['missing title', { description: 'no title' }, 'title'],
    ['empty title', { title: '' }, 'title'],
    ['whitespace-only title', { title: ' \t\n ' }, 'title'],
    ['title of 201 characters', { title: 'x'.repeat(201) }, 'title'],
    ['title as a number (no coercion)', { title: 123 }, 'title'],
    ['title as a boolean', { title: true }, 'title'],
    ['title as null', { title: null }, 'title'],
    ['description of 10001 characters', { title: 'ok', description: 'd'.repeat(10001) }, 'description'],
    ['description as a number', { title: 'ok', description: 5 }, 'description'],
    ["status 'nope'", { title: 'ok', status: 'nope' }, 'status'],
    ['status in the wrong case', { title: 'ok', status: 'TODO' }, 'status'],
    ["priority 'x'", { title: 'ok', priority: 'x' }, 'priority'],
    ["dueAt 'tomorrow'", { title: 'ok', dueAt: 'tomorrow' }, 'dueAt'],
    ['dueAt without a time zone', { title: 'ok', dueAt: '2031-01-01T10:00:00' }, 'dueAt'],
    ['dueAt as epoch milliseconds', { title: 'ok', dueAt: 1_900_000_000_000 }, 'dueAt'],
    ['dueAt on February 30th', { title: 'ok', dueAt: '2031-02-30T10:00:00Z' }, 'dueAt'],
    ['dueAt on a leap second', { title: 'ok', dueAt: '2016-12-31T23:59:60Z' }, 'dueAt'],
    ['dueAt with an hour-only offset', { title: 'ok', dueAt: '2031-01-01T10:00:00+01' }, 'dueAt'],
    ['dueAt in year zero', { title: 'ok', dueAt: '0000-06-01T00:00:00Z' }, 'dueAt'],
    ['21 tags', { title: 'ok', tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, 'tags'],
    ['a tag of 51 characters', { title: 'ok', tags: ['fine', 'x'.repeat(51)] }, 'tags.1'],
    ['an empty tag', { title: 'ok', tags: [''] }, 'tags.0'],
    ['a tag with surrounding spaces', { title: 'ok', tags: [' padded '] }, 'tags.0'],
    ['a tag that is a number', { title: 'ok', tags: ['a', 7] }, 'tags.1'],
    ['tags as a string', { title: 'ok', tags: 'a,b' }, 'tags'],
    ['tags as an object', { title: 'ok', tags: { a: true } }, 'tags'],
    ['an unknown property', { title: 'ok', colour: 'red' }, 'colour'],
    // PostgreSQL text cannot hold U+0000.
    ['a NUL character in the title', { title: 'a\u0000b' }, 'title'],
    ['a NUL character in the description', { title: 'ok', description: 'x\u0000' }, 'description'],
    ['a NUL character in a tag', { title: 'ok', tags: ['fine', '\u0000'] }, 'tags.1'],
    ['a JSON array body', [{ title: 'ok' }], ''],
    ['a JSON string body', 'just a title', ''],
    ['a JSON null body', null, ''],
  ];

  let before: TaskBody[];
  beforeAll(async () => {
    await createTask({ title: 'Existing one' });
    before = await listAll();
  });

  for (const [name, payload, field] of cases) {
    it(`${name} is a 400 naming '${field}'`, async () => {
      const res = await req()({
        method: 'POST',
        url: '/v1/tasks',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
      expectFieldError(res, field);
    });
  }

  it('reports every offending field at once', async () => {
    const res = await req()({ method: 'POST', url: '/v1/tasks', payload: { title: 5, status: 'nope', priority: 'x', tags: 'y' } });
    const problem = expectFieldError(res, 'title');
    expect(problem.errors!.map((e) => e.field).sort()).toEqual(['priority', 'status', 'tags', 'title']);
    expect(problem.type).toBe('urn:task-api:problem:validation-error');
  });

  it('none of the rejected requests created anything', async () => {
    expect(await listAll()).toEqual(before);
  });

  it('the boundaries themselves are accepted', async () => {
    const task = await createTask({
      title: 'x'.repeat(200),
      description: 'd'.repeat(10000),
      tags: Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(50, 'y')),
      dueAt: '2031-01-01T10:00:00.123+01:30',
    });
    expect(task.title.length).toBe(200);
    expect(task.tags.length).toBe(20);
    expect(task.dueAt).toBe('2031-01-01T08:30:00.123Z');
    const emoji = await createTask({ title: '\u{1F600}'.repeat(200) });
    expect([...emoji.title].length).toBe(200);
  });
});

describe('mass assignment', () => {
  const forbidden: Record<string, unknown> = {
    id: '01900000-0000-7000-8000-000000000001',
    userId: '01900000-0000-7000-8000-000000000002',
    createdAt: '2000-01-01T00:00:00.000Z',
    version: 99,
    completedAt: '2000-01-01T00:00:00.000Z',
  };

  it('POST with server-owned fields is a 400 naming each, and creates nothing', async () => {
    const before = await listAll();
    for (const [field, value] of Object.entries(forbidden)) {
      expectFieldError(await req()({ method: 'POST', url: '/v1/tasks', payload: { title: 'sneaky', [field]: value } }), field);
    }
    const all = await req()({ method: 'POST', url: '/v1/tasks', payload: { title: 'sneaky', ...forbidden } });
    const problem = expectFieldError(all, 'id');
    expect(problem.errors!.map((e) => e.field).sort()).toEqual(Object.keys(forbidden).sort());
    expect(await listAll()).toEqual(before);
  });

  it('PATCH with server-owned fields is a 400 and changes nothing', async () => {
    const task = await createTask({ title: 'Mine' });
    for (const [field, value] of Object.entries(forbidden)) {
      const res = await req()({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'changed', [field]: value } });
      expectFieldError(res, field);
    }
    const now = await req()({ method: 'GET', url: `/v1/tasks/${task.id}` });
    expect(now.json()).toEqual(task);
  });

  it('PATCH with an empty object or an invalid field is a 400 and changes nothing', async () => {
    const task = await createTask({ title: 'Unchanged' });
    const res = await req()({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: {} });
    expectProblem(res, 400);
    const bad = await req()({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: null } });
    expectFieldError(bad, 'title');
    const blank = await req()({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: '   ' } });
    expectFieldError(blank, 'title');
    const nul = await req()({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { description: 'a\u0000' } });
    expectFieldError(nul, 'description');
    expect((await req()({ method: 'GET', url: `/v1/tasks/${task.id}` })).json()).toEqual(task);
  });
});

describe('body parsing', () => {
  it('malformed JSON is a 400 problem', async () => {
    for (const payload of ['{"title": ', '{title: "x"}', "{'title': 'x'}", '{"title": "x",}', 'nul']) {
      const res = await req()({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload });
      const problem = expectProblem(res, 400);
      expect(problem.type).toBe('urn:task-api:problem:malformed-json');
    }
  });

  it('an empty body with a JSON content type is a 400 problem', async () => {
    const res = await req()({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: '' });
    expectProblem(res, 400);
  });

  it('a text/plain body is a 415 problem', async () => {
    const res = await req()({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'text/plain' }, payload: '{"title":"x"}' });
    expectProblem(res, 415);
    const form = await req()({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'title=x' });
    expectProblem(form, 415);
  });

  it('a JSON content type with parameters is accepted', async () => {
    const res = await req()({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json; charset=utf-8' }, payload: '{"title":"charset"}' });
    expect(res.statusCode, res.body).toBe(201);
  });

  it('a body over the configured limit is a 413 problem', async () => {
    const small = await createTestApp({ env: { BODY_LIMIT_BYTES: '2048' } });
    try {
      expect(small.config.http.bodyLimit).toBe(2048);
      const s = await register(small.app);
      const post = as(small.app, s.accessToken);
      const big = JSON.stringify({ title: 'big', description: 'x'.repeat(4096) });
      expectProblem(await post({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: big }), 413);
      const task = (await post({ method: 'POST', url: '/v1/tasks', payload: { title: 'small' } })).json<TaskBody>();
      expectProblem(await post({ method: 'PATCH', url: `/v1/tasks/${task.id}`, headers: { 'content-type': 'application/json' }, payload: big }), 413);
      const list = (await post({ method: 'GET', url: '/v1/tasks' })).json<PageBody>();
      expect(list.data.map((x) => x.title)).toEqual(['small']);
    } finally {
      await small.close();
    }
  });
});

describe('path parameters and routes', () => {
  for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
    it(`${method} /v1/tasks/not-a-uuid is a 400 naming id in path`, async () => {
      for (const id of ['not-a-uuid', '123', '01900000-0000-7000-8000-00000000000g', '01900000000070008000000000000000', 'x'.repeat(100)]) {
        const res = await req()({ method, url: `/v1/tasks/${id}`, ...(method === 'PATCH' ? { payload: { title: 'x' } } : {}) });
        expectFieldError(res, 'id', 'path');
      }
    });
  }

  it('errors the router answers itself are problems with the usual headers too', async () => {
    // A path parameter over the router's limit (100 characters), and a broken percent-encoding.
    const long = await req()({ method: 'GET', url: `/v1/tasks/${'a'.repeat(300)}`, headers: { 'x-request-id': 'long-1' } });
    expectProblem(long, 414);
    const badUrl = await req()({ method: 'GET', url: '/v1/tasks/%E0%A4%A', headers: { 'x-request-id': 'bad-1' } });
    expectProblem(badUrl, 400);
    for (const [res, id] of [[long, 'long-1'], [badUrl, 'bad-1']] as const) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-request-id']).toBe(id);
    }
  });

  it('an unknown route is a 404 problem', async () => {
    for (const url of ['/nope', '/v1/nope', '/v1/tasks/01900000-0000-7000-8000-000000000000/extra']) {
      const problem = expectProblem(await req()({ method: 'GET', url }), 404);
      expect(problem.instance).toBe(url);
    }
    expectProblem(await t.app.inject({ method: 'GET', url: '/nope?x=1' }), 404);
  });

  it('a missing task is a 404 problem', async () => {
    expectProblem(await req()({ method: 'GET', url: '/v1/tasks/01900000-0000-7000-8000-000000000000' }), 404);
  });

  it('no token is a 401 problem with WWW-Authenticate', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/tasks' });
    expectProblem(res, 401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
  });
});

describe('response headers', () => {
  const samples = (): Promise<Res>[] => [
    req()({ method: 'GET', url: '/v1/tasks' }),
    req()({ method: 'POST', url: '/v1/tasks', payload: { title: '' } }),
    req()({ method: 'GET', url: '/nope' }),
    t.app.inject({ method: 'GET', url: '/v1/tasks' }),
    t.app.inject({ method: 'GET', url: '/health' }),
  ];

  it('no X-Powered-By, nosniff, and a request id on every response', async () => {
    for (const res of await Promise.all(samples())) {
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('each request gets its own id', async () => {
    const [a, b] = await Promise.all([t.app.inject({ url: '/health/live' }), t.app.inject({ url: '/health/live' })]);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });

  it('a request id sent by the caller is echoed, on success and on errors', async () => {
    const id = 'trace-abc-123';
    const ok = await req()({ method: 'GET', url: '/v1/tasks', headers: { 'x-request-id': id } });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['x-request-id']).toBe(id);
    const bad = await req()({ method: 'POST', url: '/v1/tasks', headers: { 'x-request-id': id }, payload: { title: 5 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['x-request-id']).toBe(id);
    const missing = await t.app.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': id } });
    expect(missing.headers['x-request-id']).toBe(id);
  });

  it('problem responses are application/problem+json, successes application/json', async () => {
    const [list, invalid, notFound, unauthorized] = await Promise.all(samples());
    expect(String(list!.headers['content-type'])).toMatch(/^application\/json/);
    for (const res of [invalid!, notFound!, unauthorized!]) expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
  });
});

describe('health, OpenAPI and docs', () => {
  it('GET /health is 200 ok with the database up', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', draining: false, checks: { database: { status: 'up', critical: true } } });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('GET /health/live is 200', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/health/live' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('GET /openapi.json describes the API', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json<{ openapi: string; paths: Record<string, Record<string, unknown>> }>();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.paths['/v1/tasks']).toBeDefined();
    expect(Object.keys(doc.paths['/v1/tasks']!)).toEqual(expect.arrayContaining(['get', 'post']));
    expect(doc.paths['/v1/tasks/{id}']).toBeDefined();
  });

  it('GET /docs serves the documentation page', async () => {
    let res = await t.app.inject({ method: 'GET', url: '/docs' });
    for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && hops < 3; hops++) {
      const location = String(res.headers.location);
      res = await t.app.inject({ method: 'GET', url: new URL(location, 'http://localhost/docs/').pathname });
    }
    expect(res.statusCode).toBe(200);
    expect(String(res.headers['content-type'])).toContain('text/html');
    expect(res.body).toMatch(/<html/i);
  });
});

describe('a failing database', () => {
  let broken: TestApp;
  let session: SessionBody;

  beforeAll(async () => {
    broken = await createTestApp();
    session = await register(broken.app);
    await broken.database.close();
  });
  afterAll(async () => {
    // The pool is already closed; closing it again must not keep the clone from being dropped.
    try {
      await broken?.close();
    } catch {
      await broken?.app.close().catch(() => undefined);
      broken?.redis?.disconnect();
      await broken?.testDb?.drop();
    }
  });

  it('a request that needs the database is a 5xx problem without internals', async () => {
    const res = await as(broken.app, session.accessToken)({ method: 'GET', url: '/v1/tasks?q=anything' });
    expect([500, 503]).toContain(res.statusCode);
    const problem = expectProblem(res, res.statusCode);
    for (const key of Object.keys(problem)) expect(['type', 'title', 'status', 'detail', 'instance', 'requestId']).toContain(key);
    for (const leak of [/\bat\s/, /\.ts\b|\.js\b/, /node_modules/, /select|from\s+"?tasks|where/i, /postgres|CONNECTION_ENDED|ECONNREFUSED|5432/i, /stack/i]) {
      expect(res.body).not.toMatch(leak);
    }
    const write = await as(broken.app, session.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'lost' } });
    expect([500, 503]).toContain(write.statusCode);
    expect(write.body).not.toMatch(/insert|postgres|\bat\s/i);
  });

  it('GET /health is 503 with the database down; liveness is unaffected', async () => {
    const res = await broken.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ status: 'unavailable', checks: { database: { status: 'down', critical: true } } });
    expect((await broken.app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
  });

  it('the other app is unaffected', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });
});
