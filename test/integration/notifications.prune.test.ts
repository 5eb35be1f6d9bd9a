// Pruning of finished deliveries: the delivery worker deletes webhook deliveries and emails that
// succeeded or failed and were created more than DELIVERY_RETENTION_DAYS ago, in bounded batches,
// and never a pending row. Rows are inserted directly with the ages and statuses wanted.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { NotificationsRepository } from '../../src/modules/notifications/repository.js';
import { createDeliveryWorker, PRUNE_BATCH, PRUNE_STATEMENTS, startDeliveryWorker } from '../../src/modules/notifications/worker.js';
import { createTestApp, register, type TestApp } from '../helpers/app.js';

type Status = 'pending' | 'succeeded' | 'failed';

/** A logger whose JSON lines are kept in `lines`. */
function capturingLog() {
  const lines: { level: number; msg: string; pruned?: { webhookDeliveries: number; emailDeliveries: number }; retentionDays?: number }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

function withRetention(config: Config, days: number): Config {
  return { ...config, notifications: { ...config.notifications, deliveryRetentionDays: days } };
}

/** Fixtures on one app's database: a user and a webhook to hang deliveries and emails on. */
async function fixtures(t: TestApp) {
  const s = await register(t.app);
  const userId = s.user.id;
  const webhookId = randomUUID();
  await t.database.raw.query(
    `insert into webhooks (id, user_id, url, events, secret, active, created_at, updated_at)
     values ($1, $2, 'https://example.test/hook', array['task.created'], 'whsec_test', true, now(), now())`,
    [webhookId, userId],
  );
  // A pending row's next attempt is in the future, so a running worker never tries to send it.
  const webhookDelivery = async (status: Status, ageDays: number): Promise<string> => {
    const id = randomUUID();
    await t.database.raw.query(
      `insert into webhook_deliveries (id, webhook_id, event_id, attempt, status, payload, response_status, next_attempt_at, created_at, delivered_at)
       values ($1, $2, $3, 1, $4, '{"type":"task.created"}', $5,
               case when $4 = 'pending' then now() + interval '1 day' else now() - make_interval(days => $6::int) end,
               now() - make_interval(days => $6::int),
               case when $4 = 'succeeded' then now() - make_interval(days => $6::int) end)`,
      [id, webhookId, randomUUID(), status, status === 'succeeded' ? 200 : null, ageDays],
    );
    return id;
  };
  const email = async (status: Status, ageDays: number): Promise<string> => {
    const id = randomUUID();
    await t.database.raw.query(
      `insert into email_deliveries (id, user_id, event_id, recipient, subject, body, attempts, status, next_attempt_at, created_at, sent_at)
       values ($1, $2, $3, 'ann@example.test', 'Task completed', 'Write the report', 1, $4,
               case when $4 = 'pending' then now() + interval '1 day' else now() - make_interval(days => $5::int) end,
               now() - make_interval(days => $5::int),
               case when $4 = 'succeeded' then now() - make_interval(days => $5::int) end)`,
      [id, userId, randomUUID(), status, ageDays],
    );
    return id;
  };
  const ids = async (table: 'webhook_deliveries' | 'email_deliveries'): Promise<string[]> => {
    const column = table === 'webhook_deliveries' ? 'webhook_id' : 'user_id';
    const rows = await t.database.raw.query<{ id: string }>(`select id::text as id from ${table} where ${column} = $1 order by id`, [
      table === 'webhook_deliveries' ? webhookId : userId,
    ]);
    return rows.map((r) => r.id);
  };
  return { userId, webhookId, webhookDelivery, email, ids };
}

const sorted = (xs: string[]) => [...xs].sort();

describe('pruning finished deliveries (PostgreSQL)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('deletes exactly the finished rows older than the retention; pending and recent rows stay; logs the counts', async () => {
    const f = await fixtures(t);
    expect(t.config.notifications.deliveryRetentionDays).toBe(30); // the default
    const goneHooks = [await f.webhookDelivery('succeeded', 40), await f.webhookDelivery('failed', 31), await f.webhookDelivery('failed', 400)];
    const keptHooks = [
      await f.webhookDelivery('pending', 60), // pending: never pruned, however old
      await f.webhookDelivery('pending', 0),
      await f.webhookDelivery('succeeded', 29),
      await f.webhookDelivery('failed', 29),
      await f.webhookDelivery('succeeded', 0),
    ];
    const goneEmails = [await f.email('succeeded', 40), await f.email('failed', 35)];
    const keptEmails = [await f.email('pending', 90), await f.email('succeeded', 5), await f.email('failed', 0)];

    const { log, lines } = capturingLog();
    const worker = createDeliveryWorker({ database: t.database, config: t.config, log });
    expect(await worker.prune()).toEqual({ webhookDeliveries: goneHooks.length, emailDeliveries: goneEmails.length });
    expect(await f.ids('webhook_deliveries')).toEqual(sorted(keptHooks));
    expect(await f.ids('email_deliveries')).toEqual(sorted(keptEmails));
    expect(lines.filter((l) => l.msg === 'notifications: finished deliveries pruned')).toEqual([
      expect.objectContaining({ level: 30, pruned: { webhookDeliveries: 3, emailDeliveries: 2 }, retentionDays: 30 }),
    ]);

    // Nothing left to prune: nothing deleted, nothing logged.
    expect(await worker.prune()).toEqual({ webhookDeliveries: 0, emailDeliveries: 0 });
    expect(lines.filter((l) => l.msg === 'notifications: finished deliveries pruned')).toHaveLength(1);
    expect(await f.ids('webhook_deliveries')).toEqual(sorted(keptHooks));
    await worker.stop();
  });

  it('follows DELIVERY_RETENTION_DAYS', async () => {
    const f = await fixtures(t);
    const gone = await f.webhookDelivery('succeeded', 10);
    const goneEmail = await f.email('failed', 8);
    const kept = [await f.webhookDelivery('failed', 6), await f.webhookDelivery('pending', 10)];
    const keptEmails = [await f.email('succeeded', 6), await f.email('pending', 8)];
    const worker = createDeliveryWorker({ database: t.database, config: withRetention(t.config, 7), log: pino({ level: 'silent' }) });
    // Other tests' rows on this database are older than 7 days only if finished and already
    // pruned above (30 days), so the counts are this test's.
    const result = await worker.prune();
    expect(await f.ids('webhook_deliveries')).toEqual(sorted(kept));
    expect(await f.ids('email_deliveries')).toEqual(sorted(keptEmails));
    expect(await f.ids('webhook_deliveries')).not.toContain(gone);
    expect(await f.ids('email_deliveries')).not.toContain(goneEmail);
    expect(result.webhookDeliveries).toBeGreaterThanOrEqual(1);
    expect(result.emailDeliveries).toBeGreaterThanOrEqual(1);
    await worker.stop();
  });

  it('deletes at most `limit` rows per statement', async () => {
    const f = await fixtures(t);
    const old = [];
    for (let i = 0; i < 5; i++) old.push(await f.webhookDelivery(i % 2 ? 'failed' : 'succeeded', 45));
    const pending = await f.webhookDelivery('pending', 45);
    const repo = new NotificationsRepository(t.database.db);
    expect(await repo.pruneWebhookDeliveries(30, 2)).toBe(2);
    expect(await f.ids('webhook_deliveries')).toHaveLength(4);
    expect(await repo.pruneWebhookDeliveries(30, 2)).toBe(2);
    expect(await repo.pruneWebhookDeliveries(30, 2)).toBe(1);
    expect(await repo.pruneWebhookDeliveries(30, 2)).toBe(0);
    expect(await f.ids('webhook_deliveries')).toEqual([pending]);

    for (let i = 0; i < 3; i++) await f.email('succeeded', 45);
    expect(await repo.pruneEmailDeliveries(30, 2)).toBe(2);
    expect(await repo.pruneEmailDeliveries(30, 2)).toBe(1);
    expect(await f.ids('email_deliveries')).toEqual([]);
  });

  it('one round deletes at most PRUNE_STATEMENTS x PRUNE_BATCH rows per table; the next round goes on', async () => {
    const f = await fixtures(t);
    const max = PRUNE_STATEMENTS * PRUNE_BATCH;
    await t.database.raw.query(
      `insert into webhook_deliveries (id, webhook_id, event_id, attempt, status, payload, next_attempt_at, created_at)
       select gen_random_uuid(), $1, gen_random_uuid(), 1, 'failed', '{}', now() - interval '40 days', now() - interval '40 days'
       from generate_series(1, $2::int)`,
      [f.webhookId, max + 7],
    );
    const pending = await f.webhookDelivery('pending', 40);
    const worker = createDeliveryWorker({ database: t.database, config: t.config, log: pino({ level: 'silent' }) });
    expect((await worker.prune()).webhookDeliveries).toBe(max);
    expect(await f.ids('webhook_deliveries')).toHaveLength(8);
    expect((await worker.prune()).webhookDeliveries).toBe(7);
    expect(await f.ids('webhook_deliveries')).toEqual([pending]);
    await worker.stop();
  });

  it('the running worker prunes on its first pass, then not again before pruneEveryMs', async () => {
    const f = await fixtures(t);
    const first = await f.webhookDelivery('succeeded', 31);
    const kept = await f.webhookDelivery('pending', 31);
    const { log, lines } = capturingLog();
    const worker = startDeliveryWorker({ database: t.database, config: t.config, log, pollIntervalMs: 10, pruneEveryMs: 60 * 60_000 });
    try {
      const deadline = Date.now() + 10_000;
      while ((await f.ids('webhook_deliveries')).includes(first) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await f.ids('webhook_deliveries')).toEqual([kept]);
      expect(lines.some((l) => l.msg === 'notifications: finished deliveries pruned')).toBe(true);

      // Within the hour: the loop keeps polling but does not prune again.
      const second = await f.webhookDelivery('failed', 31);
      await new Promise((r) => setTimeout(r, 300));
      expect(sorted(await f.ids('webhook_deliveries'))).toEqual(sorted([kept, second]));
    } finally {
      await worker.stop();
    }
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe('pruning finished deliveries (embedded PGlite)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ embedded: true });
  });
  afterAll(() => t.close());

  it('runs the same statements', async () => {
    const f = await fixtures(t);
    await f.webhookDelivery('succeeded', 40);
    await f.email('failed', 40);
    const kept = [await f.webhookDelivery('pending', 40), await f.webhookDelivery('failed', 1)];
    const keptEmail = await f.email('pending', 40);
    const worker = createDeliveryWorker({ database: t.database, config: t.config, log: pino({ level: 'silent' }) });
    expect(await worker.prune()).toEqual({ webhookDeliveries: 1, emailDeliveries: 1 });
    expect(await f.ids('webhook_deliveries')).toEqual(sorted(kept));
    expect(await f.ids('email_deliveries')).toEqual([keptEmail]);
    await worker.stop();
  });
});
