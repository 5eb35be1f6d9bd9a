// Regressions the fuzzer (test/integration/fuzz.test.ts) found: input the validator accepted that
// the database could not store, stored as something else, or read back as another value. Each
// case names the input and what it used to answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, createTestApp, register, registerAdmin, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody, TaskBody } from '../helpers/bodies.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let t: TestApp;
let alice: SessionBody;
let admin: SessionBody;

beforeAll(async () => {
  t = await createTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' } });
  alice = await register(t.app);
  admin = await registerAdmin(t);
});
afterAll(() => t.close());

const req = (s: SessionBody = alice) => as(t.app, s.accessToken);
const send = (method: 'POST' | 'PATCH', url: string, body: unknown, s: SessionBody = alice) =>
  req(s)({ method, url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });

async function create(body: Record<string, unknown>): Promise<TaskBody> {
  const res = await send('POST', '/v1/tasks', body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json<TaskBody>();
}

function expectRefused(res: { statusCode: number; body: string }, field: string, where = 'body'): ProblemBody {
  expect(res.statusCode, res.body).toBe(400);
  const problem = JSON.parse(res.body) as ProblemBody;
  expect(problem.errors).toEqual(expect.arrayContaining([expect.objectContaining({ in: where, field })]));
  return problem;
}

/** GET by id (twice: the second from the response cache) and the list, each showing `task` as acknowledged. */
async function expectReadsBack(task: TaskBody, app = t, s = alice): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const one = await as(app.app, s.accessToken)({ method: 'GET', url: `/v1/tasks/${task.id}` });
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json()).toEqual(task);
    const list = await as(app.app, s.accessToken)({ method: 'GET', url: '/v1/tasks?limit=100&sort=dueAt' });
    expect(list.statusCode, list.body).toBe(200);
    expect(list.json<PageBody>().data.find((x) => x.id === task.id)).toEqual(task);
  }
}

describe('dates in years 0001-0099 read back as sent', () => {
  // Drizzle read PostgreSQL's '0020-01-01 00:00:00+00' with new Date: an Invalid Date for years
  // 0013-0031 (then a 500 on every GET and list of the user), 1900+year or 2000+year otherwise.
  for (const [sent, stored] of [
    ['0020-01-01T00:00:00Z', '0020-01-01T00:00:00.000Z'], // was: 201, then every read 500
    ['0013-12-31T23:59:59.999Z', '0013-12-31T23:59:59.999Z'], // was: 201, then every read 500
    ['0069-01-01T00:00:00Z', '0069-01-01T00:00:00.000Z'], // was: read back as 1969-01-01
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'], // was: read back as 2001-01-01
    ['0099-12-31T23:59:59.999Z', '0099-12-31T23:59:59.999Z'], // was: read back as 1999-12-31
  ] as const) {
    it(`dueAt ${sent}: acknowledged, read by id, listed and patched as ${stored}`, async () => {
      const task = await create({ title: `due ${sent}`, dueAt: sent });
      expect(task.dueAt).toBe(stored);
      await expectReadsBack(task);
      const patched = await send('PATCH', `/v1/tasks/${task.id}`, { dueAt: sent, title: 'patched' });
      expect(patched.statusCode, patched.body).toBe(200); // was: 500 for 0013-0031 (the returned row's Invalid Date)
      expect(patched.json<TaskBody>().dueAt).toBe(stored);
      await expectReadsBack(patched.json<TaskBody>());
    });
  }

  it('dueAt 0050-06-01 00:00:00Z (a space for the T) is acknowledged as year 50, not 1950', async () => {
    const task = await create({ title: 'space', dueAt: '0050-06-01 00:00:00Z' });
    expect(task.dueAt).toBe('0050-06-01T00:00:00.000Z'); // was: 1950-06-01T00:00:00.000Z (Date's parser)
    await expectReadsBack(task);
  });

  it('dueAt 0001-01-01T00:00:00+00:00 and 9999-12-31T23:59:59.999-00:00, the ends of the range, round-trip; a minute past either is a 400', async () => {
    for (const [sent, stored] of [
      ['0001-01-01T00:00:00+00:00', '0001-01-01T00:00:00.000Z'],
      ['9999-12-31T23:59:59.999-00:00', '9999-12-31T23:59:59.999Z'],
      ['0001-01-01T23:59:00+23:59', '0001-01-01T00:00:00.000Z'],
    ]) {
      const task = await create({ title: 'edge', dueAt: sent });
      expect(task.dueAt).toBe(stored);
      await expectReadsBack(task);
    }
    expectRefused(await send('POST', '/v1/tasks', { title: 'x', dueAt: '0001-01-01T00:00:00+00:01' }), 'dueAt');
    expectRefused(await send('POST', '/v1/tasks', { title: 'x', dueAt: '9999-12-31T23:59:00-00:01' }), 'dueAt');
  });

  it('dueAt 2024-01-01T10:00:00.123456789+01:00 keeps the millisecond (the stored precision) and reads back so', async () => {
    const task = await create({ title: 'digits', dueAt: '2024-01-01T10:00:00.123456789+01:00' });
    expect(task.dueAt).toBe('2024-01-01T09:00:00.123Z');
    await expectReadsBack(task);
  });

  for (const [name, sent] of [
    ['a tab', '2024-01-01\t10:00:00Z'],
    ['an ideographic space (U+3000)', '2024-01-01\u300010:00:00Z'],
    ['a newline', '2024-01-01\n10:00:00Z'],
  ]) {
    it(`dueAt with ${name} between date and time is a 400 (was: accepted by ajv-formats' \\s)`, async () => {
      expectRefused(await send('POST', '/v1/tasks', { title: 'x', dueAt: sent }), 'dueAt');
    });
  }

  it('dueBefore and dueAfter with digits past the millisecond compare exactly: 10:00:00.0005Z is after a task due at 10:00:00.000Z', async () => {
    const task = await create({ title: 'on the millisecond', dueAt: '2031-03-01T10:00:00.000Z' });
    const ids = async (query: string) => {
      const res = await req()({ method: 'GET', url: `/v1/tasks?limit=100&${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json<PageBody>().data.map((x) => x.id);
    };
    // was: the bound cut to 10:00:00.000Z, so dueBefore left the task out and dueAfter let it in
    expect(await ids('dueBefore=2031-03-01T10:00:00.0005Z')).toContain(task.id);
    expect(await ids('dueAfter=2031-03-01T10:00:00.0005Z')).not.toContain(task.id);
    expect(await ids('dueBefore=2031-03-01T10:00:00.000Z')).not.toContain(task.id);
    expect(await ids('dueAfter=2031-03-01T10:00:00.000Z')).toContain(task.id);
  });

  it('dueBefore=9999-12-31T23:59:59.9995Z (a bound in year 10000 once rounded up) is a 200 listing a task due at the last millisecond', async () => {
    const last = await create({ title: 'the last millisecond', dueAt: '9999-12-31T23:59:59.999Z' });
    const res = await req()({ method: 'GET', url: '/v1/tasks?limit=100&dueBefore=9999-12-31T23:59:59.9995Z' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<PageBody>().data.map((x) => x.id)).toContain(last.id);
    const after = await req()({ method: 'GET', url: '/v1/tasks?limit=100&dueAfter=9999-12-31T23:59:59.9995Z' });
    expect(after.statusCode, after.body).toBe(200);
    expect(after.json<PageBody>().data).toEqual([]);
  });

  it('dueBefore=0050-06-01 00:00:00Z filters by year 50, not 1950', async () => {
    const early = await create({ title: 'year 40', dueAt: '0040-01-01T00:00:00Z' });
    const res = await req()({ method: 'GET', url: `/v1/tasks?limit=100&dueBefore=${encodeURIComponent('0050-06-01 00:00:00Z')}` });
    expect(res.statusCode, res.body).toBe(200);
    const ids = res.json<PageBody>().data.map((x) => x.id);
    expect(ids).toContain(early.id);
    expect(res.json<PageBody>().data.every((x) => x.dueAt !== null && x.dueAt < '0050-06-01T00:00:00.000Z')).toBe(true);
  });
});

describe('a PostgreSQL session in another time zone (Europe/Paris)', () => {
  // PostgreSQL writes '1850-01-01 00:09:21+00:09:21' (local mean time) there, which Date cannot
  // read at all: every read of such a task was a 500.
  let db: TestDatabase;
  let paris: TestApp;
  let bob: SessionBody;
  beforeAll(async () => {
    db = await createTestDatabase();
    const url = new URL(db.url);
    url.searchParams.set('TimeZone', 'Europe/Paris');
    paris = await createTestApp({ env: { DATABASE_URL: url.toString() } });
    bob = await register(paris.app);
  });
  afterAll(async () => {
    await paris?.close();
    await db?.drop();
  });

  it('the session does run in Europe/Paris', async () => {
    const [row] = await paris.database.raw.query<{ tz: string }>("select current_setting('TimeZone') as tz");
    expect(row!.tz).toBe('Europe/Paris');
  });

  for (const sent of ['1850-01-01T00:00:00.000Z', '0020-06-01T12:00:00.000Z', '2024-06-01T00:00:00.500Z']) {
    it(`dueAt ${sent} reads back exactly`, async () => {
      const res = await as(paris.app, bob.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'paris', dueAt: sent } });
      expect(res.statusCode, res.body).toBe(201);
      const task = res.json<TaskBody>();
      expect(task.dueAt).toBe(sent);
      await expectReadsBack(task, paris, bob);
    });
  }
});

describe('strings with unpaired surrogates are refused, not stored as something else', () => {
  // JSON carries "\ud800"; UTF-8 cannot. The outbox's jsonb refused it (create: a 500), and text
  // columns stored U+FFFD in its place (update: a 200 acknowledging another value than stored).
  it('POST /v1/tasks with title "a\\ud800" is a 400 naming title (was: 500 from the outbox jsonb)', async () => {
    expectRefused(await send('POST', '/v1/tasks', { title: 'a\ud800' }), 'title');
  });

  it('POST /v1/tasks with tags ["\\ud800"] is a 400 naming tags.0 (was: 500)', async () => {
    expectRefused(await send('POST', '/v1/tasks', { title: 'ok', tags: ['\ud800'] }), 'tags.0');
  });

  it('PATCH /v1/tasks/:id with tags ["x", "\\udc00y"] is a 400 and the task is unchanged (was: 200, stored "\\ufffdy")', async () => {
    const task = await create({ title: 'unchanged', tags: ['keep'] });
    expectRefused(await send('PATCH', `/v1/tasks/${task.id}`, { tags: ['x', '\udc00y'] }), 'tags.1');
    expectRefused(await send('PATCH', `/v1/tasks/${task.id}`, { description: 'x\udbff' }), 'description');
    await expectReadsBack(task);
  });

  it('a surrogate pair (\\ud83d\\ude00, an emoji) is accepted and reads back as sent', async () => {
    const task = await create({ title: '\ud83d\ude00', tags: ['\ud83d\ude00'], description: 'a\u{10ffff}b' });
    expect(task.title).toBe('\u{1F600}');
    await expectReadsBack(task);
  });

  it('PATCH /v1/users/me with name "\\ud800" is a 400 (was: 200, stored "\\ufffd")', async () => {
    expectRefused(await send('PATCH', '/v1/users/me', { name: '\ud800' }), 'name');
  });

  it('POST /v1/auth/register with a lone surrogate in the email is a 400 (was: 201, the address stored with U+FFFD in its place)', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/auth/register', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ email: `a\ud800-${Date.now()}@example.test`, password: 'correct horse battery' }) });
    expectRefused(res, 'email');
  });

  it('POST /v1/webhooks with secret "\\udfff" repeated is a 400 (was: 201 showing a secret that was not the one stored)', async () => {
    expectRefused(await send('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['task.created'], secret: '\udfff'.repeat(16) }), 'secret');
  });
});

describe('ids have one spelling: canonical lowercase', () => {
  // The uppercase spelling named the same row (PostgreSQL's uuid reads it) while the services
  // passed it on as spelled: into cache keys, and as the user whose sessions to end.
  let task: TaskBody;
  beforeAll(async () => {
    task = await create({ title: 'spelled' });
  });

  const spellings = (id: string) => [id.toUpperCase(), `{${id}}`, `urn:uuid:${id}`, id.replaceAll('-', ''), ` ${id}`, `${id}\n`];

  it('GET, PATCH and DELETE /v1/tasks/<uppercase id> are a 400 naming id (was: 200 and 204 on the same task)', async () => {
    for (const id of spellings(task.id)) {
      const url = `/v1/tasks/${encodeURIComponent(id)}`;
      expectRefused(await req()({ method: 'GET', url }), 'id', 'path');
      expectRefused(await send('PATCH', url, { title: 'x' }), 'id', 'path');
      expectRefused(await req()({ method: 'DELETE', url }), 'id', 'path');
    }
    await expectReadsBack(task);
  });

  it('GET /v1/admin/tasks?userId=<uppercase id> is a 400 naming userId (was: 200)', async () => {
    for (const id of spellings(alice.user.id)) {
      expectRefused(await req(admin)({ method: 'GET', url: `/v1/admin/tasks?userId=${encodeURIComponent(id)}` }), 'userId', 'query');
    }
    const res = await req(admin)({ method: 'GET', url: `/v1/admin/tasks?userId=${alice.user.id}` });
    expect(res.statusCode).toBe(200);
  });

  it('GET, PATCH and DELETE /v1/users/<uppercase id> are a 400 (was: 200 and 204, the services passing the uppercase spelling on to the cache and the session store)', async () => {
    const bob = await register(t.app);
    const url = `/v1/users/${bob.user.id.toUpperCase()}`;
    expectRefused(await req(admin)({ method: 'GET', url }), 'id', 'path');
    expectRefused(await send('PATCH', url, { name: 'Bob' }, admin), 'id', 'path');
    expectRefused(await req(admin)({ method: 'DELETE', url }), 'id', 'path');
    expect((await req(admin)({ method: 'GET', url: `/v1/users/${bob.user.id}` })).statusCode).toBe(200);
  });

  it('GET /v1/webhooks/<uppercase id> is a 400 (was: 200)', async () => {
    const hook = await send('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/spelled', events: ['task.created'] });
    expect(hook.statusCode, hook.body).toBe(201);
    const id = hook.json<{ id: string }>().id;
    expectRefused(await req()({ method: 'GET', url: `/v1/webhooks/${id.toUpperCase()}` }), 'id', 'path');
    expectRefused(await req()({ method: 'GET', url: `/v1/webhooks/${id.toUpperCase()}/deliveries` }), 'id', 'path');
  });
});
