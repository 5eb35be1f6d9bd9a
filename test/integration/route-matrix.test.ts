// Every route, every role. The table below says, for each route the server registers, what an
// anonymous caller, the owner of the addressed resource, another user and an admin get. The
// route table comes from the server itself (onRoute), and the two must be the same set both ways:
// a route added without a row here, or a row left behind by a removed route, fails the test.
// Owner scoping shows as 404 for anyone but the owner, admins included (RFC 9110 §15.5.4: a 404
// hides a resource the caller may not see).
import type { InjectOptions, LightMyRequestResponse, RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotificationsConsumer } from '../../src/modules/notifications/handler.js';
import { as, createTestApp, register, registerAdmin, uniqueEmail, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody } from '../helpers/bodies.js';
import { taskEvent } from '../helpers/events.js';

type Role = 'anonymous' | 'user' | 'other' | 'admin';
const ROLES: Role[] = ['anonymous', 'user', 'other', 'admin'];

interface Fixtures {
  /** The caller in the 'user' role: owns task, webhook, notification and delivery. */
  owner: SessionBody;
  other: SessionBody;
  admin: SessionBody;
  taskId: string;
  webhookId: string;
  notificationId: string;
  deliveryId: string;
  /** Credentials of an account kept for login. */
  login: { email: string; password: string };
}

interface Call {
  url?: string;
  payload?: unknown;
  /** Who calls, when the row needs a caller of its own (DELETE /v1/users/me); else the role's session. */
  session?: SessionBody | null;
  /** A URL the owner can GET (200) as long as a refused call changed nothing. */
  survives?: string;
}

interface Row {
  /** Statuses for: anonymous, user (the owner), other user, admin. */
  expect: [number, number, number, number];
  call?: (f: Fixtures, role: Role) => Call | Promise<Call>;
}

// One webhook per URL and user: each gets its own.
let hooks = 0;
const hookUrl = () => `http://127.0.0.1:9/hook/${++hooks}`;
const PASSWORD = 'correct horse battery';

// Set in beforeAll, before any row runs.
let t: TestApp;
let f: Fixtures;

/** Creates something as the owner and returns its id. */
async function create(path: string, payload: object, token: string): Promise<string> {
  const res = await as(t.app, token)({ method: 'POST', url: path, payload });
  if (res.statusCode !== 201) throw new Error(`POST ${path}: ${res.statusCode} ${res.body}`);
  return res.json<{ id: string }>().id;
}
const freshTask = (f: Fixtures) => create('/v1/tasks', { title: 'Doomed' }, f.owner.accessToken);
const freshWebhook = (f: Fixtures) => create('/v1/webhooks', { url: hookUrl(), events: ['task.deleted'] }, f.owner.accessToken);
const freshSession = async (): Promise<SessionBody> => register(t.app, uniqueEmail('matrix'), PASSWORD);
const sessionFor = async (role: Role): Promise<SessionBody | null> =>
  role === 'anonymous' ? null : role === 'admin' ? registerAdmin(t) : freshSession();

const TABLE: Record<string, Row> = {
  // Operations and documentation: open to everyone.
  'GET /health':                       { expect: [200, 200, 200, 200] },
  'GET /health/live':                  { expect: [200, 200, 200, 200] },
  'GET /openapi.json':                 { expect: [200, 200, 200, 200] },
  'GET /.well-known/jwks.json':        { expect: [200, 200, 200, 200] },
  'GET /docs':                         { expect: [200, 200, 200, 200] },
  'GET /docs/json':                    { expect: [200, 200, 200, 200] },
  'GET /docs/yaml':                    { expect: [200, 200, 200, 200] },
  'GET /docs/static/index.html':       { expect: [302, 302, 302, 302] },
  'GET /docs/static/swagger-initializer.js': { expect: [200, 200, 200, 200] },
  'GET /docs/static/*':                { expect: [200, 200, 200, 200], call: () => ({ url: '/docs/static/swagger-ui.css' }) },

  // Auth: public; a token, if sent, is not looked at.
  'POST /v1/auth/register':            { expect: [201, 201, 201, 201], call: () => ({ payload: { email: uniqueEmail('matrix-reg'), password: PASSWORD } }) },
  'POST /v1/auth/login':               { expect: [200, 200, 200, 200], call: (f) => ({ payload: f.login }) },
  'POST /v1/auth/refresh':             { expect: [200, 200, 200, 200], call: async () => ({ payload: { refreshToken: (await freshSession()).refreshToken } }) },
  'POST /v1/auth/logout':              { expect: [204, 204, 204, 204], call: async () => ({ payload: { refreshToken: (await freshSession()).refreshToken } }) },

  // The caller's own profile.
  'GET /v1/users/me':                  { expect: [401, 200, 200, 200] },
  'PATCH /v1/users/me':                { expect: [401, 200, 200, 200], call: () => ({ payload: { name: 'Matrix' } }) },
  'DELETE /v1/users/me':               { expect: [401, 204, 204, 204], call: async (_f, role) => ({ session: await sessionFor(role) }) },

  // User management: admins only.
  'GET /v1/users':                     { expect: [401, 403, 403, 200] },
  'GET /v1/users/:id':                 { expect: [401, 403, 403, 200], call: (f) => ({ url: `/v1/users/${f.owner.user.id}` }) },
  'PATCH /v1/users/:id':               { expect: [401, 403, 403, 200], call: (f) => ({ url: `/v1/users/${f.owner.user.id}`, payload: { name: 'Renamed' } }) },
  'DELETE /v1/users/:id':              { expect: [401, 403, 403, 204], call: async () => ({ url: `/v1/users/${(await freshSession()).user.id}` }) },

  // Tasks: the caller's own; someone else's is a 404.
  'POST /v1/tasks':                    { expect: [401, 201, 201, 201], call: () => ({ payload: { title: 'Matrix' } }) },
  'GET /v1/tasks':                     { expect: [401, 200, 200, 200] },
  'GET /v1/tasks/:id':                 { expect: [401, 200, 404, 404], call: (f) => ({ url: `/v1/tasks/${f.taskId}` }) },
  'PATCH /v1/tasks/:id':               { expect: [401, 200, 404, 404], call: (f) => ({ url: `/v1/tasks/${f.taskId}`, payload: { status: 'in_progress' } }) },
  'DELETE /v1/tasks/:id':              { expect: [401, 204, 404, 404], call: async (f) => { const id = await freshTask(f); return { url: `/v1/tasks/${id}`, survives: `/v1/tasks/${id}` }; } },
  'GET /v1/admin/tasks':               { expect: [401, 403, 403, 200] },

  // Notifications and preferences: the caller's own.
  'GET /v1/notifications':             { expect: [401, 200, 200, 200] },
  'POST /v1/notifications/:id/read':   { expect: [401, 200, 404, 404], call: (f) => ({ url: `/v1/notifications/${f.notificationId}/read` }) },
  'POST /v1/notifications/read-all':   { expect: [401, 204, 204, 204] },
  'GET /v1/users/me/notification-preferences':   { expect: [401, 200, 200, 200] },
  'PATCH /v1/users/me/notification-preferences': { expect: [401, 200, 200, 200], call: () => ({ payload: { email: false } }) },

  // Webhooks and their deliveries: the caller's own.
  'POST /v1/webhooks':                 { expect: [401, 201, 201, 201], call: () => ({ payload: { url: hookUrl(), events: ['task.created'] } }) },
  'GET /v1/webhooks':                  { expect: [401, 200, 200, 200] },
  'GET /v1/webhooks/:id':              { expect: [401, 200, 404, 404], call: (f) => ({ url: `/v1/webhooks/${f.webhookId}` }) },
  'PATCH /v1/webhooks/:id':            { expect: [401, 200, 404, 404], call: (f) => ({ url: `/v1/webhooks/${f.webhookId}`, payload: { events: ['task.created', 'task.updated'] } }) },
  'DELETE /v1/webhooks/:id':           { expect: [401, 204, 404, 404], call: async (f) => { const id = await freshWebhook(f); return { url: `/v1/webhooks/${id}`, survives: `/v1/webhooks/${id}` }; } },
  'GET /v1/webhooks/:id/deliveries':   { expect: [401, 200, 404, 404], call: (f) => ({ url: `/v1/webhooks/${f.webhookId}/deliveries` }) },
  'POST /v1/webhooks/:id/deliveries/:deliveryId/redeliver': { expect: [401, 202, 404, 404], call: (f) => ({ url: `/v1/webhooks/${f.webhookId}/deliveries/${f.deliveryId}/redeliver` }) },
};

interface RouteEntry {
  method: string;
  url: string;
  auth: string | undefined;
}

const routes: RouteEntry[] = [];

beforeAll(async () => {
  t = await createTestApp({
    env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' },
    onRoute: (route: RouteOptions) => {
      for (const method of [route.method].flat()) routes.push({ method, url: route.url, auth: (route.config as { auth?: string } | undefined)?.auth });
    },
  });
  const [owner, other, admin, login] = await Promise.all([freshSession(), freshSession(), registerAdmin(t), freshSession()]);
  const taskId = await create('/v1/tasks', { title: 'Owned' }, owner.accessToken);
  const webhookId = await create('/v1/webhooks', { url: hookUrl(), events: ['task.created'] }, owner.accessToken);
  // A task event, as the relay would deliver it: one notification and one webhook delivery for the owner.
  const { handle } = createNotificationsConsumer({ database: t.database, config: t.config });
  await handle(taskEvent(owner.user.id, 'task.created'));
  const list = async <T>(url: string) => (await as(t.app, owner.accessToken)({ method: 'GET', url })).json<PageBody<T>>().data;
  const [notification] = await list<{ id: string }>('/v1/notifications');
  const [delivery] = await list<{ id: string }>(`/v1/webhooks/${webhookId}/deliveries`);
  f = { owner, other, admin, taskId, webhookId, notificationId: notification!.id, deliveryId: delivery!.id, login: { email: login.user.email, password: PASSWORD } };
});
afterAll(() => t?.close());

const key = (r: { method: string; url: string }) => `${r.method} ${r.url}`;

describe('the table covers the route table', () => {
  it('every route has a row and every row a route', () => {
    const served = routes.filter((r) => r.method !== 'HEAD').map(key).sort();
    expect(served.length).toBeGreaterThan(30);
    expect(Object.keys(TABLE).sort()).toEqual(served);
  });

  it('every HEAD route mirrors a GET route', () => {
    for (const r of routes.filter((x) => x.method === 'HEAD')) expect(t.app.hasRoute({ method: 'GET', url: r.url }), r.url).toBe(true);
  });

  it("the rows agree with each route's declared auth level", () => {
    for (const r of routes.filter((x) => x.method !== 'HEAD')) {
      const row = TABLE[key(r)];
      if (!row) continue; // reported by the first test
      const [anonymous, user, other] = row.expect;
      const level = r.url.startsWith('/v1/') ? (r.auth ?? 'user') : 'public';
      if (level === 'public') expect(anonymous, key(r)).not.toBe(401);
      else expect(anonymous, key(r)).toBe(401);
      if (level === 'admin') expect([user, other], key(r)).toEqual([403, 403]);
    }
  });
});

async function run(method: string, pattern: string, row: Row, role: Role): Promise<{ res: LightMyRequestResponse; call: Call }> {
  const call = row.call ? await row.call(f, role) : {};
  const session = call.session !== undefined ? call.session : role === 'anonymous' ? null : role === 'user' ? f.owner : role === 'other' ? f.other : f.admin;
  const opts: InjectOptions = { method, url: call.url ?? pattern, ...(call.payload !== undefined ? { payload: call.payload as object } : {}) };
  const res = session ? await as(t.app, session.accessToken)(opts) : await t.app.inject(opts);
  return { res, call };
}

describe.each(Object.entries(TABLE))('%s', (route, row) => {
  const [method, pattern] = route.split(' ') as [string, string];
  it.each(ROLES.map((role, i) => [role, row.expect[i]!] as const))('as %s: %i', async (role, status) => {
    const { res, call } = await run(method, pattern, row, role);
    expect(res.statusCode, res.body).toBe(status);
    if (status >= 400) {
      expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
      expect(res.json<ProblemBody>().status).toBe(status);
      if (status === 401) expect(res.headers['www-authenticate']).toBe('Bearer');
      // A refused call changed nothing the owner can see.
      if (call.survives) expect((await as(t.app, f.owner.accessToken)({ method: 'GET', url: call.survives })).statusCode).toBe(200);
    }
    if (method === 'GET') {
      // HEAD answers as GET does, without a body.
      const head = await run('HEAD', pattern, row, role);
      expect(head.res.statusCode).toBe(status);
      expect(head.res.body).toBe('');
    }
  });
});
