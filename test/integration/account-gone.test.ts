// An access token outlives its account by up to its TTL (JWT_ACCESS_TTL_SECONDS): it still verifies
// after the account is deleted. Every authenticated route then answers 401 'account-gone', the
// same problem everywhere: no 500 from a write that fails on the account's foreign key, no empty
// page, no 404 and no default preferences for an account that is not there, and nothing written.
// The route table comes from the server itself (onRoute): an authenticated route added without a
// row here fails the test.
import type { InjectOptions, RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authLevelOf, type AuthLevel } from '../../src/http/auth.js';
import { createNotificationsConsumer } from '../../src/modules/notifications/handler.js';
import { as, createTestApp, register, registerAdmin, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody } from '../helpers/bodies.js';
import { taskEvent } from '../helpers/events.js';

interface Gone {
  /** The deleted user's session and what they owned. */
  user: SessionBody;
  taskId: string;
  webhookId: string;
  notificationId: string;
  deliveryId: string;
  /** A deleted admin's session. */
  admin: SessionBody;
  /** An account that stays: what the deleted admin's calls address. */
  bystander: SessionBody;
}

type Calls = (g: Gone) => InjectOptions[];

/** Each authenticated route, and the calls (valid in every other respect) its row makes. */
const TABLE: Record<string, Calls> = {
  'GET /v1/users/me': () => [{}],
  'PATCH /v1/users/me': () => [{ payload: { name: 'Ghost' } }, { payload: { password: 'a new password', currentPassword: 'correct horse battery' } }],
  'DELETE /v1/users/me': () => [{}],
  'GET /v1/users': () => [{}],
  'GET /v1/users/:id': (g) => [{ url: `/v1/users/${g.bystander.user.id}` }],
  'PATCH /v1/users/:id': (g) => [{ url: `/v1/users/${g.bystander.user.id}`, payload: { role: 'admin' } }, { url: `/v1/users/${g.bystander.user.id}`, payload: { name: 'x' } }],
  'DELETE /v1/users/:id': (g) => [{ url: `/v1/users/${g.bystander.user.id}` }],

  'POST /v1/tasks': () => [{ payload: { title: 'Written by a ghost' } }],
  'GET /v1/tasks': () => [{}, { url: '/v1/tasks?status=done&sort=-updatedAt' }],
  'GET /v1/tasks/:id': (g) => [{ url: `/v1/tasks/${g.taskId}` }],
  'PATCH /v1/tasks/:id': (g) => [{ url: `/v1/tasks/${g.taskId}`, payload: { title: 'x' } }, { url: `/v1/tasks/${g.taskId}`, payload: { title: 'x' }, headers: { 'if-match': '*' } }],
  'DELETE /v1/tasks/:id': (g) => [{ url: `/v1/tasks/${g.taskId}` }, { url: `/v1/tasks/${g.taskId}`, headers: { 'if-match': '"1"' } }],
  'GET /v1/admin/tasks': (g) => [{}, { url: `/v1/admin/tasks?userId=${g.bystander.user.id}` }],

  'GET /v1/notifications': () => [{}, { url: '/v1/notifications?unread=true' }],
  'POST /v1/notifications/:id/read': (g) => [{ url: `/v1/notifications/${g.notificationId}/read` }],
  'POST /v1/notifications/read-all': () => [{}],
  'GET /v1/users/me/notification-preferences': () => [{}],
  'PATCH /v1/users/me/notification-preferences': () => [{ payload: { email: true } }],

  'POST /v1/webhooks': () => [{ payload: { url: 'http://127.0.0.1:9/ghost', events: ['task.created'], secret: 'ghost-secret-0123456789' } }],
  'GET /v1/webhooks': () => [{}],
  'GET /v1/webhooks/:id': (g) => [{ url: `/v1/webhooks/${g.webhookId}` }],
  'PATCH /v1/webhooks/:id': (g) => [{ url: `/v1/webhooks/${g.webhookId}`, payload: { active: false } }],
  'DELETE /v1/webhooks/:id': (g) => [{ url: `/v1/webhooks/${g.webhookId}` }],
  'GET /v1/webhooks/:id/deliveries': (g) => [{ url: `/v1/webhooks/${g.webhookId}/deliveries` }],
  'POST /v1/webhooks/:id/deliveries/:deliveryId/redeliver': (g) => [{ url: `/v1/webhooks/${g.webhookId}/deliveries/${g.deliveryId}/redeliver` }],
};

const routes = new Map<string, AuthLevel>();
let t: TestApp;
let g: Gone;

const created = async (res: Promise<{ statusCode: number; body: string; json: <T>() => T }>): Promise<string> => {
  const r = await res;
  if (r.statusCode !== 201) throw new Error(`expected 201: ${r.statusCode} ${r.body}`);
  return r.json<{ id: string }>().id;
};

const count = async (table: string, userId: string) =>
  (await t.database.raw.query<{ n: number }>(`select count(*)::int as n from ${table} where user_id = $1`, [userId]))[0]!.n;

beforeAll(async () => {
  t = await createTestApp({
    env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' },
    onRoute: (route: RouteOptions) => {
      const level = authLevelOf(route.config);
      if (!route.url.startsWith('/v1/') || level === 'public') return;
      for (const method of [route.method].flat()) if (method !== 'HEAD') routes.set(`${method} ${route.url}`, level);
    },
  });
  const [user, admin, otherAdmin, bystander] = await Promise.all([register(t.app), registerAdmin(t), registerAdmin(t), register(t.app)]);
  const req = as(t.app, user.accessToken);
  const taskId = await created(req({ method: 'POST', url: '/v1/tasks', payload: { title: 'Soon gone' } }));
  const webhookId = await created(req({ method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/soon-gone', events: ['task.created'] } }));
  // A task event, as the relay delivers it: a notification and a webhook delivery for the user.
  const { handle } = createNotificationsConsumer({ database: t.database, config: t.config });
  await handle(taskEvent(user.user.id));
  const notificationId = (await req({ method: 'GET', url: '/v1/notifications' })).json<PageBody<{ id: string }>>().data[0]!.id;
  const deliveryId = (await req({ method: 'GET', url: `/v1/webhooks/${webhookId}/deliveries` })).json<PageBody<{ id: string }>>().data[0]!.id;
  // The list is in the response cache when the account goes.
  const cached = await req({ method: 'GET', url: '/v1/tasks' });
  expect(cached.json<PageBody>().data).toHaveLength(1);
  expect((await req({ method: 'GET', url: '/v1/tasks' })).headers['x-cache']).toBe('HIT');

  expect((await req({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);
  expect((await as(t.app, otherAdmin.accessToken)({ method: 'DELETE', url: `/v1/users/${admin.user.id}` })).statusCode).toBe(204);
  // The deletions reach the tasks and notifications modules as user.deleted.
  await t.deliverAccountEvents();
  g = { user, taskId, webhookId, notificationId, deliveryId, admin, bystander };
});
afterAll(() => t.close());

describe("a valid access token of a deleted account: 401 'account-gone' on every authenticated route", () => {
  it('the table covers every authenticated route the server registers, and only those', () => {
    expect([...routes.keys()].sort()).toEqual(Object.keys(TABLE).sort());
  });

  it('every route, called as the deleted user (and user routes as the deleted admin too)', async () => {
    const answers: string[] = [];
    for (const [route, level] of routes) {
      const [method, path] = route.split(' ') as [InjectOptions['method'] & string, string];
      const tokens = level === 'admin' ? [g.admin] : [g.user, g.admin];
      for (const session of tokens) {
        for (const call of TABLE[route]!(g)) {
          const res = await as(t.app, session.accessToken)({ method, url: path, ...call });
          const problem = res.json<ProblemBody>();
          const seen = `${route} ${typeof call.url === 'string' ? call.url : ''} as ${session === g.admin ? 'admin' : 'user'}: ${res.statusCode} ${problem.type}`;
          answers.push(seen);
          expect(res.statusCode, seen).toBe(401);
          expect(res.headers['content-type'], seen).toMatch(/^application\/problem\+json/);
          expect(res.headers['www-authenticate'], seen).toBe('Bearer');
          expect(problem, seen).toMatchObject({ type: 'urn:task-api:problem:account-gone', status: 401, detail: 'The account no longer exists' });
        }
      }
    }
    expect(answers.length).toBeGreaterThanOrEqual(Object.keys(TABLE).length);
  });

  it('nothing was written for the deleted accounts, and the bystander the deleted admin addressed is untouched', async () => {
    for (const table of ['tasks', 'webhooks', 'notifications', 'notification_preferences']) {
      expect(await count(table, g.user.user.id), table).toBe(0);
      expect(await count(table, g.admin.user.id), table).toBe(0);
    }
    const me = await as(t.app, g.bystander.accessToken)({ method: 'GET', url: '/v1/users/me' });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ id: g.bystander.user.id, role: 'user', name: null });
  });

  it('an account that exists still gets its empty page, its 404 and its default preferences', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    expect((await req({ method: 'GET', url: '/v1/tasks' })).json()).toEqual({ data: [], nextCursor: null });
    expect((await req({ method: 'GET', url: `/v1/tasks/${g.taskId}` })).statusCode).toBe(404);
    expect((await req({ method: 'GET', url: `/v1/webhooks/${g.webhookId}` })).statusCode).toBe(404);
    expect((await req({ method: 'GET', url: '/v1/webhooks' })).json()).toEqual({ data: [], nextCursor: null });
    expect((await req({ method: 'GET', url: '/v1/notifications' })).json()).toEqual({ data: [], nextCursor: null });
    expect((await req({ method: 'POST', url: '/v1/notifications/read-all' })).statusCode).toBe(204);
    expect((await req({ method: 'GET', url: '/v1/users/me/notification-preferences' })).json()).toEqual({ inApp: true, email: false, webhooks: true });
  });
});
