// Account events (src/shared/events.ts UserEvent): the users module writes them to its outbox with
// each change of an account, and the tasks and notifications modules keep their copies of the
// account from them and delete the account's data on user.deleted. What is promised: the event
// commits with the change and carries no credentials; copies apply events in the account's
// updatedAt order (a late or repeated event changes nothing; a deleted account stays deleted);
// a create racing the deletion either lands first and is deleted with the rest, or is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccountsHandler as notificationsAccounts } from '../../src/modules/notifications/handler.js';
import { NotificationsRepository } from '../../src/modules/notifications/repository.js';
import { createAccountsHandler as tasksAccounts } from '../../src/modules/tasks/accounts.js';
import { parseUserEvent, type UserEvent } from '../../src/shared/events.js';
import { isPoisonMessage } from '../../src/shared/poison.js';
import { as, createTestApp, register, uniqueEmail, type TestApp } from '../helpers/app.js';
import { singleShard } from '../../src/infra/shards/set.js';
import { ShardRepositories } from '../../src/modules/tasks/service.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' } });
});
afterAll(() => t.close());

const pendingAccountEvents = async (userId: string) =>
  (
    await t.database.raw.query<{ type: string; payload: UserEvent; aggregate: string; aggregate_id: string }>(
      "select type, payload, aggregate, aggregate_id from outbox where user_id = $1 and type like 'user.%' order by created_at, id",
      [userId],
    )
  ).map((r) => ({ ...r, payload: typeof r.payload === 'string' ? (JSON.parse(r.payload) as UserEvent) : r.payload }));

const one = async <T extends Record<string, unknown>>(sql: string, params: unknown[]) => (await t.database.raw.query<T>(sql, params))[0];

/** An account event as the users module writes it, for the consumers. */
function accountEvent(type: UserEvent['type'], userId: string, email: string, updatedAt: string): UserEvent {
  return {
    id: crypto.randomUUID(),
    type,
    schemaVersion: 1,
    occurredAt: updatedAt,
    userId,
    data: { user: { id: userId, email, role: 'user', name: null, createdAt: '2026-01-01T00:00:00.000Z', updatedAt } },
  };
}

describe('the users module writes an account event with each change, in its transaction', () => {
  it('user.created, user.updated (naming what changed; a password change names it, never the hash), user.deleted', async () => {
    const email = uniqueEmail('events');
    const s = await register(t.app, email, 'first password');
    const req = as(t.app, s.accessToken);
    expect((await req({ method: 'PATCH', url: '/v1/users/me', payload: { name: 'Ann' } })).statusCode).toBe(200);
    expect((await req({ method: 'PATCH', url: '/v1/users/me', payload: { password: 'second password', currentPassword: 'first password' } })).statusCode).toBe(200);
    expect((await req({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);

    const events = await pendingAccountEvents(s.user.id);
    expect(events.map((e) => e.type)).toEqual(['user.created', 'user.updated', 'user.updated', 'user.deleted']);
    for (const e of events) {
      expect(e.aggregate).toBe('user');
      expect(e.aggregate_id).toBe(s.user.id);
      expect(parseUserEvent(JSON.parse(JSON.stringify(e.payload)))).toEqual(e.payload); // the contract holds
      expect(JSON.stringify(e.payload)).not.toMatch(/argon2|password_?hash/i);
      expect(e.payload.data.user).toMatchObject({ id: s.user.id, email, role: 'user' });
    }
    expect(events[1]!.payload.data).toMatchObject({ changes: ['name'], user: { name: 'Ann' } });
    expect(events[2]!.payload.data.changes).toEqual(['password']);
    // Each change's updatedAt orders them.
    const times = events.slice(0, 3).map((e) => Date.parse(e.payload.data.user.updatedAt));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('a sign-up refused (the address is taken) writes no event', async () => {
    const email = uniqueEmail('taken');
    const s = await register(t.app, email);
    const again = await t.app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password: 'correct horse battery' } });
    expect(again.statusCode).toBe(409);
    expect((await one<{ n: number }>("select count(*)::int as n from outbox where type = 'user.created' and payload->'data'->'user'->>'email' = $1", [email]))!.n).toBe(1);
    expect((await pendingAccountEvents(s.user.id)).map((e) => e.type)).toEqual(['user.created']);
  });
});

describe("the other modules' copies of an account", () => {
  const handlers = () => [tasksAccounts({ repos: new ShardRepositories(singleShard(t.database)), dataChanged: async () => undefined }), notificationsAccounts(new NotificationsRepository(t.database.db))];
  const apply = async (e: UserEvent) => {
    for (const h of handlers()) await h(e);
  };
  const copies = async (userId: string) => ({
    owner: await one<{ email: string; deleted: boolean }>('select email, deleted_at is not null as deleted from task_owners where user_id = $1', [userId]),
    recipient: await one<{ email: string | null; deleted: boolean }>('select email, deleted_at is not null as deleted from notification_recipients where user_id = $1', [userId]),
  });

  it('apply events in the order of the account, whatever order they arrive in, and twice is once', async () => {
    const id = crypto.randomUUID();
    const newer = accountEvent('user.updated', id, 'new@example.test', '2026-03-01T00:00:00.000Z');
    const older = accountEvent('user.created', id, 'old@example.test', '2026-02-01T00:00:00.000Z');
    await apply(newer);
    await apply(older); // late: changes nothing
    await apply(newer); // again: changes nothing
    expect(await copies(id)).toEqual({ owner: { email: 'new@example.test', deleted: false }, recipient: { email: 'new@example.test', deleted: false } });
  });

  it('a deleted account stays deleted: a late user.updated does not bring it back; the deletion applied twice is once', async () => {
    const s = await register(t.app);
    await t.deliverAccountEvents();
    const deleted = accountEvent('user.deleted', s.user.id, s.user.email, new Date(Date.now() + 1000).toISOString());
    await apply(deleted);
    await apply(deleted);
    await apply(accountEvent('user.updated', s.user.id, 'late@example.test', new Date(Date.now() + 60_000).toISOString()));
    const c = await copies(s.user.id);
    expect(c.owner).toMatchObject({ deleted: true });
    expect(c.recipient).toEqual({ email: null, deleted: true });
    expect((await as(t.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'after' } })).statusCode).toBe(401);
  });

  it('an event that breaks the contract is poison (dead-lettered, not retried)', async () => {
    const [h] = handlers();
    const broken = { ...accountEvent('user.updated', crypto.randomUUID(), 'x@example.test', new Date().toISOString()), schemaVersion: 2 };
    const err = await h!(broken as unknown as UserEvent).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isPoisonMessage(err)).toBe(true);
  });
});

describe('deletion racing writes of the account', () => {
  it('creates running while user.deleted is applied: each lands before the deletion (and goes with it) or is refused with 401; nothing is left', async () => {
    for (let round = 0; round < 3; round++) {
      const s = await register(t.app);
      await t.deliverAccountEvents();
      const req = as(t.app, s.accessToken);
      expect((await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'before' } })).statusCode).toBe(201);
      expect((await req({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);
      const creates = Array.from({ length: 8 }, (_, i) => req({ method: 'POST', url: '/v1/tasks', payload: { title: `racing ${i}` } }));
      const webhook = req({ method: 'POST', url: '/v1/webhooks', payload: { url: `http://127.0.0.1:9/race-${round}`, events: ['task.created'] } });
      const [answers] = await Promise.all([Promise.all([...creates, webhook]), t.deliverAccountEvents()]);
      for (const a of answers) expect([201, 401], a.body).toContain(a.statusCode);
      // Whatever was acknowledged before the deletion took its lock is gone with the account.
      for (const table of ['tasks', 'webhooks']) {
        expect((await one<{ n: number }>(`select count(*)::int as n from ${table} where user_id = $1`, [s.user.id]))!.n, table).toBe(0);
      }
      expect((await req({ method: 'GET', url: '/v1/tasks' })).statusCode).toBe(401);
    }
  });
});
