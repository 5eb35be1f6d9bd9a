import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotificationsConsumer } from '../../src/modules/notifications/handler.js';
import type { EventHandler } from '../../src/shared/events.js';
import { isPoisonMessage, PoisonMessageError } from '../../src/shared/poison.js';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody } from '../helpers/bodies.js';
import { taskEvent } from '../helpers/events.js';

interface NotificationBody {
  id: string;
  type: string;
  title: string;
  body: string;
  taskId: string | null;
  eventId: string;
  createdAt: string;
  readAt: string | null;
}

let t: TestApp;
let handle: EventHandler;
let alice: SessionBody;
let bob: SessionBody;

beforeAll(async () => {
  t = await createTestApp();
  handle = createNotificationsConsumer({ database: t.database, config: t.config }).handle;
  alice = await register(t.app);
  bob = await register(t.app);
});
afterAll(() => t.close());

const count = async (table: string, where: string, params: unknown[]) =>
  (await t.database.raw.query<{ n: number }>(`select count(*)::int as n from ${table} where ${where}`, params))[0]!.n;

describe('handle(event): idempotent consumer', () => {
  it('creates one notification; the same event again changes nothing', async () => {
    const s = await register(t.app);
    const event = taskEvent(s.user.id, 'task.created', 'Idempotent title');
    await handle(event);
    expect(await count('notifications', 'user_id = $1', [s.user.id])).toBe(1);
    expect(await count('processed_events', "consumer = 'notifications' and event_id = $1", [event.id])).toBe(1);
    await handle(event);
    await handle(structuredClone(event));
    expect(await count('notifications', 'user_id = $1', [s.user.id])).toBe(1);
    expect(await count('processed_events', 'event_id = $1', [event.id])).toBe(1);
    const list = (await as(t.app, s.accessToken)({ method: 'GET', url: '/v1/notifications' })).json<PageBody<NotificationBody>>();
    expect(list.data).toHaveLength(1);
    expect(list.data[0]).toMatchObject({ type: 'task.created', eventId: event.id, taskId: event.taskId, readAt: null });
    expect(list.data[0]!.title).toContain('Idempotent title');
  });

  it('a concurrent double delivery of one event has one effect', async () => {
    const s = await register(t.app);
    const event = taskEvent(s.user.id, 'task.completed');
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => handle(structuredClone(event))));
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(await count('notifications', 'user_id = $1', [s.user.id])).toBe(1);
    expect(await count('processed_events', 'event_id = $1', [event.id])).toBe(1);
  });

  it('malformed events and unknown schema versions are poison, and change nothing', async () => {
    const s = await register(t.app);
    const good = taskEvent(s.user.id);
    const bad: unknown[] = [
      null,
      'task.created',
      { ...good, schemaVersion: 2 },
      { ...good, schemaVersion: undefined },
      { ...good, id: 'not-a-uuid' },
      { ...good, type: 'task.exploded' },
      { ...good, data: {} },
      { ...good, userId: undefined },
    ];
    for (const message of bad) {
      const err = await handle(message as never).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, JSON.stringify(message)).toBeInstanceOf(PoisonMessageError);
      expect(isPoisonMessage(err)).toBe(true);
    }
    const version = await handle({ ...good, schemaVersion: 2 } as never).catch((e: unknown) => e);
    expect((version as PoisonMessageError).reason).toBe('unknown-schema-version');
    expect(await count('notifications', 'user_id = $1', [s.user.id])).toBe(0);
    expect(await count('processed_events', 'event_id = $1', [good.id])).toBe(0);
  });

  it('an event for an account whose deletion reached the module (user.deleted) is recorded and does nothing', async () => {
    const s = await register(t.app);
    expect((await as(t.app, s.accessToken)({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);
    await t.deliverAccountEvents();
    const event = taskEvent(s.user.id);
    await handle(event);
    expect(await count('processed_events', 'event_id = $1', [event.id])).toBe(1);
    expect(await count('notifications', 'event_id = $1', [event.id])).toBe(0);
    expect(await count('notification_recipients', 'user_id = $1 and deleted_at is not null', [s.user.id])).toBe(1);
  });

  it("an event for an account not heard of yet (its user.created still on its way) takes effect: the account exists", async () => {
    const event = taskEvent('01900000-0000-7000-8000-000000000000');
    await handle(event);
    expect(await count('processed_events', 'event_id = $1', [event.id])).toBe(1);
    expect(await count('notifications', 'event_id = $1', [event.id])).toBe(1);
  });
});

describe('in-app notifications API', () => {
  it('lists newest first with a cursor and the unread filter; read and read-all', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    const events = Array.from({ length: 5 }, (_, i) => taskEvent(s.user.id, 'task.updated', `Task ${i}`));
    for (const e of events) await handle(e);

    const first = (await req({ method: 'GET', url: '/v1/notifications?limit=2' })).json<PageBody<NotificationBody>>();
    expect(first.data.map((n) => n.title)).toEqual(['Task updated: Task 4', 'Task updated: Task 3']);
    expect(first.nextCursor).not.toBeNull();
    const second = (await req({ method: 'GET', url: `/v1/notifications?limit=2&cursor=${first.nextCursor}` })).json<PageBody<NotificationBody>>();
    expect(second.data.map((n) => n.title)).toEqual(['Task updated: Task 2', 'Task updated: Task 1']);
    const third = (await req({ method: 'GET', url: `/v1/notifications?limit=2&cursor=${second.nextCursor}` })).json<PageBody<NotificationBody>>();
    expect(third.data.map((n) => n.title)).toEqual(['Task updated: Task 0']);
    expect(third.nextCursor).toBeNull();
    expect((await req({ method: 'GET', url: '/v1/notifications?cursor=garbage' })).statusCode).toBe(400);

    const target = first.data[1]!;
    const read = await req({ method: 'POST', url: `/v1/notifications/${target.id}/read` });
    expect(read.statusCode).toBe(200);
    const readBody = read.json<NotificationBody>();
    expect(readBody.id).toBe(target.id);
    expect(readBody.readAt).not.toBeNull();
    // reading again keeps the first read time
    expect((await req({ method: 'POST', url: `/v1/notifications/${target.id}/read` })).json<NotificationBody>().readAt).toBe(readBody.readAt);

    const unread = (await req({ method: 'GET', url: '/v1/notifications?unread=true&limit=100' })).json<PageBody<NotificationBody>>();
    expect(unread.data).toHaveLength(4);
    expect(unread.data.map((n) => n.id)).not.toContain(target.id);
    const unreadPage = (await req({ method: 'GET', url: '/v1/notifications?unread=true&limit=3' })).json<PageBody<NotificationBody>>();
    const unreadRest = (await req({ method: 'GET', url: `/v1/notifications?unread=true&limit=3&cursor=${unreadPage.nextCursor}` })).json<PageBody<NotificationBody>>();
    expect([...unreadPage.data, ...unreadRest.data].map((n) => n.id)).toEqual(unread.data.map((n) => n.id));

    const all = await req({ method: 'POST', url: '/v1/notifications/read-all' });
    expect(all.statusCode).toBe(204);
    expect((await req({ method: 'GET', url: '/v1/notifications?unread=true' })).json<PageBody<NotificationBody>>().data).toHaveLength(0);
    expect((await req({ method: 'GET', url: '/v1/notifications?limit=100' })).json<PageBody<NotificationBody>>().data).toHaveLength(5);
  });

  it("another user's notification is a 404, like a missing one (BOLA)", async () => {
    await handle(taskEvent(alice.user.id, 'task.created', 'Alice only'));
    const mine = (await as(t.app, alice.accessToken)({ method: 'GET', url: '/v1/notifications' })).json<PageBody<NotificationBody>>();
    const id = mine.data[0]!.id;
    const byBob = as(t.app, bob.accessToken);
    const theirs = await byBob({ method: 'POST', url: `/v1/notifications/${id}/read` });
    const none = await byBob({ method: 'POST', url: '/v1/notifications/01900000-0000-7000-8000-000000000000/read' });
    expect(theirs.statusCode).toBe(404);
    const strip = (b: string) => ({ ...(JSON.parse(b) as object), instance: undefined, requestId: undefined });
    expect(strip(theirs.body)).toEqual(strip(none.body));
    expect((await byBob({ method: 'POST', url: '/v1/notifications/read-all' })).statusCode).toBe(204);
    expect((await byBob({ method: 'GET', url: '/v1/notifications' })).json<PageBody<NotificationBody>>().data.map((n) => n.id)).not.toContain(id);
    const still = (await as(t.app, alice.accessToken)({ method: 'GET', url: '/v1/notifications' })).json<PageBody<NotificationBody>>();
    expect(still.data.find((n) => n.id === id)!.readAt).toBeNull();
  });

  it('needs a token', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/v1/notifications' })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/v1/users/me/notification-preferences' })).statusCode).toBe(401);
  });
});

describe('notification preferences', () => {
  it('has defaults, changes partially, and validates', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    const url = '/v1/users/me/notification-preferences';
    expect((await req({ method: 'GET', url })).json()).toEqual({ inApp: true, email: false, webhooks: true });
    const patched = await req({ method: 'PATCH', url, payload: { email: true } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toEqual({ inApp: true, email: true, webhooks: true });
    expect((await req({ method: 'PATCH', url, payload: { inApp: false } })).json()).toEqual({ inApp: false, email: true, webhooks: true });
    expect((await req({ method: 'GET', url })).json()).toEqual({ inApp: false, email: true, webhooks: true });
    const bad = await req({ method: 'PATCH', url, payload: { inApp: 'no' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<ProblemBody>().errors?.map((e) => e.field)).toContain('inApp');
    const unknown = await req({ method: 'PATCH', url, payload: { sms: true } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json<ProblemBody>().errors?.map((e) => e.field)).toContain('sms');
    expect((await req({ method: 'PATCH', url, payload: {} })).statusCode).toBe(400);
  });

  it('in-app off: the event is processed but makes no notification', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    await req({ method: 'PATCH', url: '/v1/users/me/notification-preferences', payload: { inApp: false } });
    const event = taskEvent(s.user.id);
    await handle(event);
    expect(await count('processed_events', 'event_id = $1', [event.id])).toBe(1);
    expect(await count('notifications', 'user_id = $1', [s.user.id])).toBe(0);
    await req({ method: 'PATCH', url: '/v1/users/me/notification-preferences', payload: { inApp: true } });
    await handle(taskEvent(s.user.id));
    expect(await count('notifications', 'user_id = $1', [s.user.id])).toBe(1);
  });
});

describe('on the embedded database (PGlite)', () => {
  it('handles an event once and serves the notification', async () => {
    const e = await createTestApp({ embedded: true });
    try {
      const s = await register(e.app);
      const embeddedHandle = createNotificationsConsumer({ database: e.database, config: e.config }).handle;
      const event = taskEvent(s.user.id, 'task.deleted', 'Gone task');
      await embeddedHandle(event);
      await embeddedHandle(event);
      const list = (await as(e.app, s.accessToken)({ method: 'GET', url: '/v1/notifications' })).json<PageBody<NotificationBody>>();
      expect(list.data.map((n) => n.title)).toEqual(['Task deleted: Gone task']);
    } finally {
      await e.close();
    }
  });
});
