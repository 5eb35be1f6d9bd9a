// The publishing side of task events: the outbox written in the task's transaction, the relay to
// RabbitMQ (the machine's broker, an exchange of each test's own), and the in-process bus.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskOf } from '../helpers/events.js';
import { pino } from 'pino';
import { openDatabase, type Database } from '../../src/infra/db/database.js';
import { OutboxRepository } from '../../src/events/outbox.js';
import { RabbitMqEventBus } from '../../src/events/rabbitmq.js';
import { OutboxRelay } from '../../src/events/relay.js';
import { startEvents } from '../../src/events/runtime.js';
import type { TaskEvent } from '../../src/shared/events.js';
import { PoisonMessageError } from '../../src/shared/poison.js';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import { AMQP_URL, deleteExchange, readExchange, silentLog, testExchange } from '../helpers/amqp.js';

const silent = pino({ level: 'silent' });

async function pendingCount(db: Database): Promise<number> {
  const [row] = await db.raw.query<{ n: number }>('select count(*)::int as n from outbox where published_at is null');
  return row!.n;
}

function relayOf(database: Database, exchange: string, batchSize = 100) {
  const bus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog });
  const relay = new OutboxRelay({
    outbox: new OutboxRepository(database.db),
    publish: (events) => bus.publish(events),
    log: silentLog,
    pollMs: 20,
    batchSize,
    retentionHours: 24,
  });
  return { bus, relay };
}

describe('outbox: every task write commits its event in the same transaction', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('create, update, complete, update again, delete: exactly these events, with the task as it stood', async () => {
    const s = await register(t.app);
    await t.deliverAccountEvents(); // the account event is not what this test relays
    const req = as(t.app, s.accessToken);
    const created = await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'Write', tags: ['a'] } });
    expect(created.statusCode).toBe(201);
    const task = created.json<{ id: string }>();
    const renamed = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { title: 'Write more' } });
    const done = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { status: 'done', priority: 'high' } });
    const again = await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { status: 'done' } });
    expect([renamed.statusCode, done.statusCode, again.statusCode]).toEqual([200, 200, 200]);
    expect((await req({ method: 'DELETE', url: `/v1/tasks/${task.id}` })).statusCode).toBe(204);

    const rows = await new OutboxRepository(t.database.db).ofAggregate(task.id);
    expect(rows.map((r) => r.type)).toEqual(['task.created', 'task.updated', 'task.completed', 'task.updated', 'task.deleted']);
    expect(rows.map((r) => r.payload.data.changes)).toEqual([undefined, ['title'], ['status', 'priority'], ['status'], undefined]);
    const snapshots = [created, renamed, done, again].map((r) => r.json<Record<string, unknown>>());
    rows.forEach((r, i) => {
      const e = taskOf(r.payload);
      expect(e.id).toBe(r.id);
      expect(e.type).toBe(r.type);
      expect(e.schemaVersion).toBe(1);
      expect(e.userId).toBe(s.user.id);
      expect(e.taskId).toBe(task.id);
      expect(r.userId).toBe(s.user.id);
      expect(r.aggregate).toBe('task');
      expect(new Date(e.occurredAt).toISOString()).toBe(e.occurredAt);
      expect(r.publishedAt).toBeNull();
      expect(r.attempts).toBe(0);
      expect(e.traceContext).toBeUndefined(); // tracing is off in this process
      expect(r.traceContext).toBeNull();
      // The snapshot is the task as the API answered it (deleted: as it stood before).
      expect(e.data.task).toEqual(snapshots[Math.min(i, 3)]);
    });
    const [kind] = await t.database.raw.query<{ k: string }>('select jsonb_typeof(payload) as k from outbox where id = $1', [rows[0]!.id]);
    expect(kind!.k).toBe('object');
  });

  it('a write whose event cannot be stored is rolled back: no task change, no event', async () => {
    // Only this file's database: the outbox refuses these events, after the task write succeeded.
    await t.database.raw.script(
      `ALTER TABLE outbox ADD CONSTRAINT test_refuse CHECK (payload->'data'->'task'->>'title' NOT IN ('refuse me', 'refuse my deletion') OR type = 'task.created' AND payload->'data'->'task'->>'title' = 'refuse my deletion')`,
    );
    try {
      const s = await register(t.app);
      await t.deliverAccountEvents(); // the account event is not what this test relays
      const req = as(t.app, s.accessToken);
      const before = await t.database.raw.query<{ n: number }>('select count(*)::int as n from outbox');
      // create
      expect((await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'refuse me' } })).statusCode).toBe(500);
      const listed = await req({ method: 'GET', url: '/v1/tasks' });
      expect(listed.json<{ data: unknown[] }>().data).toEqual([]);
      // update
      const ok = (await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'fine' } })).json<{ id: string; version: number }>();
      expect((await req({ method: 'PATCH', url: `/v1/tasks/${ok.id}`, payload: { title: 'refuse me' } })).statusCode).toBe(500);
      const still = (await req({ method: 'GET', url: `/v1/tasks/${ok.id}` })).json<{ title: string; version: number }>();
      expect([still.title, still.version]).toEqual(['fine', ok.version]);
      // delete
      const keep = (await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'refuse my deletion' } })).json<{ id: string }>();
      expect((await req({ method: 'DELETE', url: `/v1/tasks/${keep.id}` })).statusCode).toBe(500);
      expect((await req({ method: 'GET', url: `/v1/tasks/${keep.id}` })).statusCode).toBe(200);

      const after = await t.database.raw.query<{ n: number }>('select count(*)::int as n from outbox');
      expect(after[0]!.n - before[0]!.n).toBe(2); // the two successful creates, nothing else
      const outbox = new OutboxRepository(t.database.db);
      expect((await outbox.ofAggregate(ok.id)).map((r) => r.type)).toEqual(['task.created']);
      expect((await outbox.ofAggregate(keep.id)).map((r) => r.type)).toEqual(['task.created']);
    } finally {
      await t.database.raw.script('ALTER TABLE outbox DROP CONSTRAINT test_refuse');
    }
  });
});

describe('relay to RabbitMQ', () => {
  let t: TestApp;
  const exchanges: string[] = [];
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
    for (const ex of exchanges) await deleteExchange(ex).catch(() => undefined);
  });

  async function someTasks(n: number): Promise<void> {
    const s = await register(t.app);
    await t.deliverAccountEvents(); // the account event is not what this test relays
    const req = as(t.app, s.accessToken);
    for (let i = 0; i < n; i++) {
      const res = await req({ method: 'POST', url: '/v1/tasks', payload: { title: `task ${i}` } });
      expect(res.statusCode).toBe(201);
    }
  }

  async function drainAll(): Promise<void> {
    // Earlier tests' events: publish them to an exchange nobody reads.
    const ex = testExchange();
    exchanges.push(ex);
    const { bus, relay } = relayOf(t.database, ex);
    await relay.drain();
    await bus.close();
  }

  it('publishes persistent JSON messages: messageId = event id, routing key and type = event type, body = the outbox payload', async () => {
    await drainAll();
    const exchange = testExchange();
    exchanges.push(exchange);
    const reader = await readExchange(exchange);
    const s = await register(t.app);
    await t.deliverAccountEvents(); // the account event is not what this test relays
    const req = as(t.app, s.accessToken);
    const task = (await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'publish me' } })).json<{ id: string }>();
    await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { status: 'done' } });
    await req({ method: 'DELETE', url: `/v1/tasks/${task.id}` });

    const { bus, relay } = relayOf(t.database, exchange);
    expect(await relay.drain()).toBe(3);
    await bus.close();
    await reader.waitFor(3);
    await reader.close();

    const rows = await new OutboxRepository(t.database.db).ofAggregate(task.id);
    expect(rows.every((r) => r.publishedAt !== null)).toBe(true);
    expect(reader.messages).toHaveLength(3);
    reader.messages.forEach((m, i) => {
      const row = rows[i]!;
      expect(m.properties.messageId).toBe(row.id);
      expect(m.properties.type).toBe(row.type);
      expect(m.fields.routingKey).toBe(row.type);
      expect(m.fields.exchange).toBe(exchange);
      expect(m.properties.deliveryMode).toBe(2);
      expect(m.properties.contentType).toBe('application/json');
      expect(JSON.parse(m.content.toString('utf8'))).toEqual(row.payload);
    });
  });

  it('two relays on one database publish every event exactly once', async () => {
    await drainAll();
    const exchange = testExchange();
    exchanges.push(exchange);
    const reader = await readExchange(exchange);
    await someTasks(60);
    expect(await pendingCount(t.database)).toBe(60);
    // Each relay has its own pool, as two instances would.
    const dbs = await Promise.all([0, 1].map(() => openDatabase({ url: t.testDb!.url, poolMax: 3, prepare: true, dataDir: ':memory:' })));
    const relays = dbs.map((db) => relayOf(db, exchange, 7));
    let published = 0;
    const counting = relays.map(({ relay }) => {
      const once = relay.runOnce.bind(relay);
      const counts = { n: 0 };
      relay.runOnce = async () => {
        const n = await once();
        counts.n += n;
        published += n;
        return n;
      };
      return counts;
    });
    relays.forEach(({ relay }) => relay.start());
    for (let i = 0; i < 400 && (await pendingCount(t.database)) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    await Promise.all(relays.map(({ relay }) => relay.stop()));
    await Promise.all(relays.map(({ bus }) => bus.close()));
    await Promise.all(dbs.map((db) => db.close()));
    await reader.waitFor(60);
    await reader.close();

    expect(await pendingCount(t.database)).toBe(0);
    expect(published).toBe(60);
    expect(counting.every((c) => c.n > 0)).toBe(true); // both took a share
    const counts = reader.counts();
    expect(counts.size).toBe(60);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('events committed while no relay runs, or whose relay died before marking them, are published by the next relay', async () => {
    await drainAll();
    const exchange = testExchange();
    exchanges.push(exchange);
    const reader = await readExchange(exchange);
    await someTasks(5); // no relay running: committed, not published
    expect(await pendingCount(t.database)).toBe(5);

    // A relay that publishes and dies before it can mark the rows (its transaction never commits).
    const dying = relayOf(t.database, exchange);
    const crashing = new OutboxRelay({
      outbox: new OutboxRepository(t.database.db),
      publish: async (events) => {
        await dying.bus.publish(events.slice(0, 2));
        throw new Error('killed between publish and commit');
      },
      log: silentLog,
      pollMs: 20,
      batchSize: 100,
      retentionHours: 24,
    });
    await expect(crashing.runOnce()).rejects.toThrow(/killed/);
    await dying.bus.close();
    expect(await pendingCount(t.database)).toBe(5);
    const [attempts] = await t.database.raw.query<{ n: number }>('select min(attempts)::int as n from outbox where published_at is null');
    expect(attempts!.n).toBe(1);

    // "Restart": a new relay publishes all five.
    const { bus, relay } = relayOf(t.database, exchange);
    relay.start();
    for (let i = 0; i < 400 && (await pendingCount(t.database)) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    await relay.stop();
    await bus.close();
    await reader.waitFor(7);
    await reader.close();
    expect(await pendingCount(t.database)).toBe(0);
    const counts = reader.counts();
    // Every event arrived; the two sent before the crash arrived twice (at least once: consumers dedupe by messageId).
    expect(counts.size).toBe(5);
    expect([...counts.values()].sort()).toEqual([1, 1, 1, 2, 2]);
  });

  it('prunes published events older than the retention, never pending ones', async () => {
    await someTasks(2);
    await drainAll();
    await someTasks(1); // pending
    await t.database.raw.script(`update outbox set published_at = published_at - interval '25 hours' where published_at is not null`);
    const outbox = new OutboxRepository(t.database.db);
    const pruned = await outbox.prune(24);
    expect(pruned).toBeGreaterThan(0);
    const [left] = await t.database.raw.query<{ published: number; pending: number }>(
      'select count(*) filter (where published_at is not null)::int as published, count(*) filter (where published_at is null)::int as pending from outbox',
    );
    expect(left).toEqual({ published: 0, pending: 1 });
    const stats = await outbox.stats();
    expect(stats.pending).toBe(1);
    expect(stats.oldestPendingAgeSeconds).toBeGreaterThanOrEqual(0);
  });
});

describe('RabbitMQ consumers', () => {
  it('a failing handler is retried with backoff until it succeeds (effect once); past x-delivery-limit the message is dead-lettered', async () => {
    const t = await createTestApp();
    const exchange = testExchange();
    const attempts = new Map<string, number>();
    const effects: string[] = [];
    const consumerBus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog, deliveryLimit: 3, retryBaseMs: 20 });
    consumerBus.subscribe('retry', async (e) => {
      const n = (attempts.get(e.id) ?? 0) + 1;
      attempts.set(e.id, n);
      const title = taskOf(e).data.task.title;
      if (title === 'flaky' && n <= 2) throw new Error('transient failure');
      if (title === 'broken') throw new Error('always fails');
      effects.push(title);
    });
    try {
      await consumerBus.start();
      const s = await register(t.app);
      await t.deliverAccountEvents(); // the account event is not what this test relays
      const req = as(t.app, s.accessToken);
      for (const title of ['flaky', 'broken']) await req({ method: 'POST', url: '/v1/tasks', payload: { title } });
      const { bus, relay } = relayOf(t.database, exchange);
      expect(await relay.drain()).toBe(2);
      await bus.close();
      const { connect } = await import('amqplib');
      const conn = await connect(AMQP_URL);
      const ch = await conn.createChannel();
      let dead: Awaited<ReturnType<typeof ch.get>> = false;
      for (let i = 0; i < 400 && !dead; i++) {
        dead = await ch.get(`${exchange}.retry.dead`, { noAck: true });
        if (!dead) await new Promise((r) => setTimeout(r, 25));
      }
      expect(effects).toEqual(['flaky']);
      expect(dead && (JSON.parse(dead.content.toString('utf8')) as TaskEvent).data.task.title).toBe('broken');
      // The queue is a quorum queue: the broker counted the deliveries (limit 3 -> 4 attempts).
      expect([...attempts.values()].sort()).toEqual([3, 4]);
      await conn.close();
    } finally {
      await consumerBus.close();
      await deleteExchange(exchange, AMQP_URL, [`${exchange}.retry`, `${exchange}.retry.dead`]).catch(() => undefined);
      await deleteExchange(`${exchange}.dead`).catch(() => undefined);
      await t.close();
    }
  });

  it('while the database is unavailable the delivery is held and the handler retried: no delivery spent, nothing dead-lettered', async () => {
    const t = await createTestApp();
    const exchange = testExchange();
    let attempts = 0;
    const effects: string[] = [];
    // Two deliveries allowed: the requeue path would dead-letter the event at the third failure.
    const consumerBus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog, deliveryLimit: 2, retryBaseMs: 5 });
    consumerBus.subscribe('outage', async (e) => {
      attempts++;
      // What postgres.js throws while PgBouncer or the primary is down.
      if (attempts <= 8) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6432'), { code: 'ECONNREFUSED' });
      effects.push(taskOf(e).data.task.title);
    });
    try {
      await consumerBus.start();
      const s = await register(t.app);
      await t.deliverAccountEvents();
      await as(t.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'during an outage' } });
      const { bus, relay } = relayOf(t.database, exchange);
      expect(await relay.drain()).toBe(1);
      await bus.close();
      for (let i = 0; i < 400 && effects.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(effects).toEqual(['during an outage']);
      expect(attempts).toBe(9);
      const { connect } = await import('amqplib');
      const conn = await connect(AMQP_URL);
      const ch = await conn.createChannel();
      expect(await ch.get(`${exchange}.outage.dead`, { noAck: true })).toBe(false);
      await conn.close();
    } finally {
      await consumerBus.close();
      await deleteExchange(exchange, AMQP_URL, [`${exchange}.outage`, `${exchange}.outage.dead`]).catch(() => undefined);
      await deleteExchange(`${exchange}.dead`).catch(() => undefined);
      await t.close();
    }
  });

  it('a subscribed handler receives each event once; a poison event goes to the dead-letter queue', async () => {
    const t = await createTestApp();
    const exchange = testExchange();
    const received: TaskEvent[] = [];
    const consumerBus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog });
    consumerBus.subscribe('test', async (e) => {
      const task = taskOf(e);
      if (task.data.task.title === 'poison') throw new PoisonMessageError('test poison', 'malformed');
      received.push(task);
    });
    try {
      await consumerBus.start();
      const s = await register(t.app);
      await t.deliverAccountEvents(); // the account event is not what this test relays
      const req = as(t.app, s.accessToken);
      for (const title of ['one', 'poison', 'two']) await req({ method: 'POST', url: '/v1/tasks', payload: { title } });
      const { bus, relay } = relayOf(t.database, exchange);
      expect(await relay.drain()).toBe(3);
      await bus.close();
      for (let i = 0; i < 200 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 25));
      expect(received.map((e) => e.data.task.title)).toEqual(['one', 'two']);
      // The dead-letter queue holds the poison event.
      const { connect } = await import('amqplib');
      const conn = await connect(AMQP_URL);
      const ch = await conn.createChannel();
      let got: Awaited<ReturnType<typeof ch.get>> = false;
      for (let i = 0; i < 100 && !got; i++) {
        got = await ch.get(`${exchange}.test.dead`, { noAck: true });
        if (!got) await new Promise((r) => setTimeout(r, 25));
      }
      expect(got && (JSON.parse(got.content.toString('utf8')) as TaskEvent).data.task.title).toBe('poison');
      await conn.close();
    } finally {
      await consumerBus.close();
      await deleteExchange(exchange, AMQP_URL, [`${exchange}.test`, `${exchange}.test.dead`]).catch(() => undefined);
      await deleteExchange(`${exchange}.dead`).catch(() => undefined);
      await t.close();
    }
  });
});

describe('embedded mode (no AMQP_URL): the in-process bus', () => {
  it('handlers registered in process receive each event once, in order', async () => {
    const t = await createTestApp({ embedded: true, env: { OUTBOX_POLL_MS: '20' } });
    const received: TaskEvent[] = [];
    const other: string[] = [];
    const events = await startEvents({
      config: t.config,
      database: t.database,
      log: silent,
      consumers: [
        (bus) => bus.subscribe('test', async (e) => void received.push(taskOf(e))),
        (bus) => bus.subscribe('completions', async (e) => void other.push(e.type), { types: ['task.completed'] }),
      ],
    });
    try {
      expect(events.bus.kind).toBe('in-process');
      const s = await register(t.app);
      await t.deliverAccountEvents(); // the account event is not what this test relays
      const req = as(t.app, s.accessToken);
      const task = (await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'embedded' } })).json<{ id: string }>();
      await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { status: 'done' } });
      await req({ method: 'DELETE', url: `/v1/tasks/${task.id}` });
      for (let i = 0; i < 400 && received.length < 3; i++) await new Promise((r) => setTimeout(r, 25));
      await events.stop();
      expect(received.map((e) => e.type)).toEqual(['task.created', 'task.completed', 'task.deleted']);
      expect(new Set(received.map((e) => e.id)).size).toBe(3);
      expect(other).toEqual(['task.completed']);
      expect(await pendingCount(t.database)).toBe(0);
    } finally {
      await events.stop();
      await t.close();
    }
  });
});
