// Faults in the middle of relaying, against real services only (PostgreSQL, a RabbitMQ node of
// this file's own: test/helpers/rabbitmq-server.ts; the machine's shared broker is untouched):
//  1. `task-api worker` gets SIGTERM while it is publishing a long backlog in small batches: it
//     exits 0 promptly, every row it marked published is in the queue, the rest stay pending, and
//     a second worker publishes them: nothing lost.
//  2. The broker is SIGKILLed while a batch waits for its publisher confirms: the batch rolls back
//     (rows pending, attempts counted), the relay counts the failures and backs off, and once the
//     node is back on the same data directory every event arrives.
// The relay's delivery is at least once: duplicates are allowed, but only of rows that were in
// flight when the fault hit; each test reports how many it saw.
import { connect, type ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRepository } from '../../src/events/outbox.js';
import { RabbitMqEventBus } from '../../src/events/rabbitmq.js';
import { OutboxRelay } from '../../src/events/relay.js';
import { errorMessage } from '../../src/shared/errors.js';
import type { TaskEvent } from '../../src/shared/events.js';
import { as, createTestApp, register, testPrivateKey, type TestApp } from '../helpers/app.js';
import { deleteExchange, testExchange } from '../helpers/amqp.js';
import { startWorker, type CliProcess } from '../helpers/process.js';
import { ownRabbit, rabbitmqAvailable, type OwnRabbit } from '../helpers/rabbitmq-server.js';
import { REDIS_URL } from '../setup/services.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface OutboxState {
  published: Map<string, string>; // id -> type
  pending: Map<string, { type: string; attempts: number }>;
}

async function outboxState(t: TestApp): Promise<OutboxState> {
  const rows = await t.database.raw.query<{ id: string; type: string; published: boolean; attempts: number }>(
    'select id::text as id, type, published_at is not null as published, attempts from outbox',
  );
  const state: OutboxState = { published: new Map(), pending: new Map() };
  for (const r of rows) {
    if (r.published) state.published.set(r.id, r.type);
    else state.pending.set(r.id, { type: r.type, attempts: r.attempts });
  }
  return state;
}

const pendingCount = async (t: TestApp) =>
  (await t.database.raw.query<{ n: number }>('select count(*)::int as n from outbox where published_at is null'))[0]!.n;

/** Creates `n` tasks through the API (each commits one task.created event to the outbox). */
async function createTasks(t: TestApp, n: number): Promise<void> {
  const s = await register(t.app);
  // The sign-up's account event is not what these tests relay or count: applied, then removed.
  await t.deliverAccountEvents();
  await t.database.raw.query("delete from outbox where type like 'user.%'");
  const req = as(t.app, s.accessToken);
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const res = await req({ method: 'POST', url: '/v1/tasks', payload: { title: `fault ${i}`, description: 'x'.repeat(200) } });
      if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, lane));
}

/** A durable queue bound to the exchange (declared as the bus declares it); consumed only on demand. */
async function queueOf(url: string, exchange: string, queue: string) {
  const conn = await connect(url);
  conn.on('error', () => undefined);
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  await ch.assertExchange(exchange, 'topic', { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, exchange, '#');
  const messages: ConsumeMessage[] = [];
  let consuming = false;
  return {
    messages,
    depth: async () => (await ch.checkQueue(queue)).messageCount,
    consume: async () => {
      if (consuming) return;
      consuming = true;
      await ch.consume(queue, (m) => m && messages.push(m), { noAck: true });
    },
    /** messageId -> how many times it arrived. */
    counts() {
      const c = new Map<string, number>();
      for (const m of messages) c.set(String(m.properties.messageId), (c.get(String(m.properties.messageId)) ?? 0) + 1);
      return c;
    },
    /** Waits (bounded) until `ids` unique messages arrived and the queue is empty. */
    async drainTo(ids: number, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (this.counts().size >= ids && (await this.depth()) === 0) break;
        await sleep(25);
      }
      await sleep(200); // a straggler (a duplicate) would show up now
    },
    close: () => conn.close().catch(() => undefined),
  };
}

/** Waits for the worker's exit, at most `ms`; a worker still running then is SIGKILLed (and the wait reports it). */
async function exitWithin(w: CliProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; hung: boolean }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = await Promise.race([w.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms)))]);
  clearTimeout(timer);
  if (hung && w.running()) process.kill(w.pid, 'SIGKILL');
  const res = await w.exited;
  return { ...res, ms: Date.now() - started, hung };
}

describe.skipIf(!rabbitmqAvailable())('relay faults', () => {
  let rabbit: OwnRabbit;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    rabbit = await ownRabbit();
    await rabbit.start();
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await rabbit?.destroy();
  });

  it('SIGTERM in the middle of a backlog: exits 0, published rows are in the queue, the rest pending; a second worker loses nothing', async () => {
    const EVENTS = 2000;
    const BATCH = 20;
    const t = await createTestApp();
    cleanups.push(() => t.close());
    const exchange = testExchange();
    const queue = `${exchange}.reader`;
    const q = await queueOf(rabbit.url, exchange, queue);
    cleanups.push(async () => {
      await q.close();
      await deleteExchange(exchange, rabbit.url, [queue, `${exchange}.notifications`, `${exchange}.notifications.dead`]);
    });
    const t0 = Date.now();
    await createTasks(t, EVENTS);
    expect(await pendingCount(t)).toBe(EVENTS);
    const createdMs = Date.now() - t0;

    const env = {
      DATABASE_URL: t.testDb!.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: `${exchange}:`,
      JWT_PRIVATE_KEY: testPrivateKey(),
      AMQP_URL: rabbit.url,
      AMQP_EXCHANGE: exchange,
      OUTBOX_POLL_MS: '50',
      OUTBOX_BATCH: String(BATCH),
    };
    const first = await startWorker(env);
    cleanups.push(async () => {
      if (first.running()) process.kill(first.pid, 'SIGKILL');
    });
    // Mid-run, not by luck: the signal goes once the broker holds some of the backlog while the
    // outbox still has nearly all of it pending (100 batches of 20: it cannot be done by then).
    // A depth that is no multiple of the batch size, past the first two batches, is a batch caught
    // half-published; that is preferred, but any depth > 0 is mid-run.
    let depthAtSignal = 0;
    let pendingAtSignal = 0;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && first.running()) {
      depthAtSignal = await q.depth();
      if ((depthAtSignal > 2 * BATCH && depthAtSignal % BATCH !== 0) || depthAtSignal >= 10 * BATCH) break;
      await sleep(2);
    }
    pendingAtSignal = await pendingCount(t);
    expect(depthAtSignal, first.output()).toBeGreaterThan(0);
    process.kill(first.pid, 'SIGTERM');
    const exit = await exitWithin(first, 15_000);
    const out1 = first.output();
    expect(exit.hung, `worker did not exit within 15 s of SIGTERM:\n${out1.slice(-3000)}`).toBe(false);
    expect(exit.code, out1.slice(-3000)).toBe(0);
    expect(exit.ms).toBeLessThan(10_000);
    expect(pendingAtSignal).toBeGreaterThan(0); // the signal landed mid-run
    expect(out1).toMatch(/"msg":"shutdown requested"/);
    expect(out1).toMatch(/"msg":"stopped"/);
    expect(out1).not.toMatch(/publish failed|unhandled|Unhandled|shutdown failed/);

    // Every row is either published (its message is in the queue) or still pending.
    const after = await outboxState(t);
    expect(after.published.size + after.pending.size).toBe(EVENTS);
    expect(after.published.size).toBeGreaterThan(0);
    expect(after.pending.size).toBeGreaterThan(0); // stopped before the end of the backlog
    await q.consume();
    await q.drainTo(after.published.size);
    const firstCounts = q.counts();
    const publishedMissing = [...after.published.keys()].filter((id) => !firstCounts.has(id));
    // A row marked published whose message never reached the broker would be lost for good.
    expect(publishedMissing, 'rows marked published but not in the queue').toEqual([]);
    for (const m of q.messages) {
      const id = String(m.properties.messageId);
      const type = after.published.get(id) ?? after.pending.get(id)?.type;
      expect(type, `message ${id} is no outbox row`).toBeDefined();
      expect(m.properties.type).toBe(type);
      expect(m.fields.routingKey).toBe(type);
      expect((JSON.parse(m.content.toString('utf8')) as TaskEvent).id).toBe(id);
    }
    // Sent but not marked: the batch in flight, if the shutdown did not let it finish.
    const inFlightSent = [...firstCounts.keys()].filter((id) => after.pending.has(id));
    expect(inFlightSent.length).toBeLessThanOrEqual(BATCH);

    // The second relay publishes everything left.
    const t1 = Date.now();
    const second = await startWorker(env);
    cleanups.push(async () => {
      if (second.running()) process.kill(second.pid, 'SIGKILL');
    });
    for (let i = 0; i < 1200 && (await pendingCount(t)) > 0; i++) await sleep(50);
    process.kill(second.pid, 'SIGTERM');
    const exit2 = await exitWithin(second, 15_000);
    expect(exit2.code, second.output().slice(-3000)).toBe(0);
    const secondMs = Date.now() - t1;
    expect(await pendingCount(t)).toBe(0);
    await q.drainTo(EVENTS);
    const counts = q.counts();
    const all = await outboxState(t);
    expect(counts.size).toBe(EVENTS); // every event, none lost
    expect(new Set(counts.keys())).toEqual(new Set(all.published.keys()));
    const duplicates = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    // Duplicates only of rows that were in flight (sent by the first worker, left pending).
    expect(duplicates.every((id) => inFlightSent.includes(id))).toBe(true);
    console.error(
      `[sigterm mid-batch] events=${EVENTS} batch=${BATCH} queueDepthAtSignal=${depthAtSignal} (half-published batch: ${depthAtSignal % BATCH !== 0}) pendingAtSignal=${pendingAtSignal} ` +
        `exitCode=${exit.code} exitMs=${exit.ms} publishedByFirst=${after.published.size} pendingAfterFirst=${after.pending.size} ` +
        `sentButPending=${inFlightSent.length} messages=${q.messages.length} unique=${counts.size} duplicates=${duplicates.length} createMs=${createdMs} secondWorkerMs=${secondMs}`,
    );
  }, 110_000);

  it('broker SIGKILLed while a batch waits for confirms: the batch rolls back, the relay backs off, and after the restart every event arrives', async () => {
    const EVENTS = 1200;
    const BATCH = 100;
    const KILL_AT = 4; // three batches published, the fourth is on the wire when the node dies
    const t = await createTestApp();
    cleanups.push(() => t.close());
    const exchange = testExchange();
    const queue = `${exchange}.reader`;
    // Declared before anything is published and read only at the end: a durable queue, so what
    // the broker confirmed before the kill is still there after the restart.
    await (await queueOf(rabbit.url, exchange, queue)).close();
    cleanups.push(() => deleteExchange(exchange, rabbit.url, [queue]));
    await createTasks(t, EVENTS);
    expect(await pendingCount(t)).toBe(EVENTS);

    const logged: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
    const log = {
      info: (obj: object, msg: string) => void logged.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
      warn: (obj: object, msg: string) => void logged.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
      error: (obj: object, msg: string) => void logged.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
    };
    let failures = 0;
    let publishedCount = 0;
    const bus = new RabbitMqEventBus({ url: rabbit.url, exchange, log });
    cleanups.push(() => bus.close());
    const nodePid = await rabbit.pid();
    expect(nodePid).toBeDefined();
    let batches = 0;
    const killed: { ids: string[]; outcome: string | undefined } = { ids: [], outcome: undefined };
    const relay = new OutboxRelay({
      outbox: new OutboxRepository(t.database.db),
      publish: async (events) => {
        batches++;
        if (batches !== KILL_AT) return bus.publish(events);
        const confirming = bus.publish(events);
        // The batch is on the wire (amqplib writes it once the channel promise resolves); its
        // confirms need the broker to persist 100 messages first. Kill the node now.
        await new Promise((r) => setImmediate(r));
        process.kill(nodePid!, 'SIGKILL');
        killed.ids = events.map((e) => e.id);
        try {
          await confirming;
          killed.outcome = 'confirmed';
        } catch (err) {
          killed.outcome = `rejected: ${errorMessage(err)}`;
          throw err;
        }
      },
      log,
      recorder: { published: (_type, n) => void (publishedCount += n), publishFailure: () => void failures++ },
      pollMs: 20,
      batchSize: BATCH,
      retentionHours: 24,
      maxBackoffMs: 1000,
    });
    cleanups.push(() => relay.stop());
    relay.start();

    // The batch fails, the relay keeps failing while the node is down, and backs off.
    for (let i = 0; i < 400 && failures < 4; i++) await sleep(50);
    await rabbit.kill(); // already dead: waits until the node and its port are gone
    expect(killed.outcome, JSON.stringify(logged.slice(-10))).toMatch(/^rejected/);
    expect(failures, JSON.stringify(logged.slice(-10))).toBeGreaterThanOrEqual(4);
    const during = await outboxState(t);
    // Nothing unconfirmed was marked: exactly the three confirmed batches are published.
    expect(during.published.size).toBe((KILL_AT - 1) * BATCH);
    expect(publishedCount).toBe((KILL_AT - 1) * BATCH);
    expect(killed.ids).toHaveLength(BATCH);
    for (const id of killed.ids) {
      expect(during.published.has(id), `row ${id} of the killed batch is marked published`).toBe(false);
      expect(during.pending.get(id)!.attempts).toBeGreaterThanOrEqual(1);
    }
    const failed = logged.filter((l) => l.msg === 'outbox relay: publish failed, events stay pending');
    expect(failed.length).toBeGreaterThanOrEqual(4);
    const delays = failed.map((l) => Number(l.obj.retryInMs));
    expect(delays.slice(0, 4)).toEqual([40, 80, 160, 320]); // pollMs * 2^failures, capped at maxBackoffMs

    // Back on the same data directory: the relay picks up where it failed.
    await rabbit.start();
    for (let i = 0; i < 1200 && (await pendingCount(t)) > 0; i++) await sleep(50);
    await relay.stop();
    await bus.close();
    expect(await pendingCount(t)).toBe(0);
    expect(logged.some((l) => l.msg === 'outbox relay publishing again')).toBe(true);

    const q = await queueOf(rabbit.url, exchange, queue);
    cleanups.push(() => q.close());
    await q.consume();
    await q.drainTo(EVENTS);
    const counts = q.counts();
    const all = await outboxState(t);
    expect(counts.size).toBe(EVENTS); // unique ids received == events written
    expect(new Set(counts.keys())).toEqual(new Set(all.published.keys()));
    for (const m of q.messages) expect(m.properties.type).toBe(all.published.get(String(m.properties.messageId)));
    const duplicates = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    // Only the killed batch may arrive twice (persisted by the broker, but never confirmed).
    expect(duplicates.filter((id) => !killed.ids.includes(id))).toEqual([]);
    const [attempts] = await t.database.raw.query<{ min: number; max: number }>(
      'select min(attempts)::int as min, max(attempts)::int as max from outbox where id = any($1::uuid[])',
      [killed.ids],
    );
    console.error(
      `[broker SIGKILL] events=${EVENTS} batch=${BATCH} killedBatch=${killed.outcome} failuresCounted=${failures} ` +
        `retryInMs=${delays.join(',')} killedBatchAttempts=${attempts!.min}..${attempts!.max} messages=${q.messages.length} ` +
        `unique=${counts.size} duplicates=${duplicates.length} pendingAtEnd=0 ` +
        `busWarnings=${JSON.stringify([...new Set(logged.filter((l) => l.level !== 'info').map((l) => `${l.msg}: ${String(l.obj.err)}`))].slice(0, 8))}`,
    );
  }, 110_000);
});
