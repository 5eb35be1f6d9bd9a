// The consumer counters (events_consumed_total, events_consume_failures_total,
// events_dead_lettered_total) as the Metrics registry exposes them after real deliveries:
// RabbitMQ (an exchange of the test's own, the bus startEvents creates) and the in-process bus.
import { connect } from 'amqplib';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { taskOf } from '../helpers/events.js';
import { OutboxRepository } from '../../src/events/outbox.js';
import { RabbitMqEventBus } from '../../src/events/rabbitmq.js';
import { OutboxRelay } from '../../src/events/relay.js';
import { startEvents } from '../../src/events/runtime.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { Database } from '../../src/infra/db/database.js';
import { PoisonMessageError } from '../../src/shared/poison.js';
import { as, createTestApp, register } from '../helpers/app.js';
import { AMQP_URL, deleteExchange, silentLog, testExchange } from '../helpers/amqp.js';

const silent = pino({ level: 'silent' });
const NAMES = ['events_consumed_total', 'events_consume_failures_total', 'events_dead_lettered_total'] as const;

/** consumer -> [consumed, failures, dead-lettered], from the registry's text exposition. */
async function counters(metrics: Metrics, consumer: string): Promise<number[]> {
  const text = await metrics.registry.metrics();
  return NAMES.map((name) => {
    const m = new RegExp(`^${name}\\{consumer="${consumer}",service="task-api"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  });
}

/** Polls (bounded) until the counters read `want`, then returns what they read. */
async function waitForCounters(metrics: Metrics, consumer: string, want: number[]): Promise<number[]> {
  let got = await counters(metrics, consumer);
  for (let i = 0; i < 400 && JSON.stringify(got) !== JSON.stringify(want); i++) {
    await new Promise((r) => setTimeout(r, 25));
    got = await counters(metrics, consumer);
  }
  return got;
}

async function drain(database: Database, exchange: string): Promise<number> {
  const bus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog });
  const relay = new OutboxRelay({ outbox: new OutboxRepository(database.db), publish: (e) => bus.publish(e), log: silentLog, pollMs: 20, batchSize: 100, retentionHours: 24 });
  try {
    return await relay.drain();
  } finally {
    await bus.close();
  }
}

async function cleanup(exchange: string, consumers: string[]): Promise<void> {
  const queues = consumers.flatMap((c) => [`${exchange}.${c}`, `${exchange}.${c}.dead`]);
  await deleteExchange(exchange, AMQP_URL, queues).catch(() => undefined);
  await deleteExchange(`${exchange}.dead`).catch(() => undefined);
}

describe('consumer metrics on RabbitMQ', () => {
  it('startEvents wires the bus to the registry: consumed, requeued failures, poison and non-JSON dead-lettered, by consumer', async () => {
    const t = await createTestApp();
    const exchange = testExchange();
    const metrics = new Metrics();
    const failedOnce = new Set<string>();
    const seen: string[] = [];
    const events = await startEvents({
      config: { ...t.config, events: { ...t.config.events, amqpUrls: [AMQP_URL], exchange } },
      database: t.database,
      log: silent,
      metrics,
      relay: false,
      consumers: [
        (bus) =>
          bus.subscribe('counted', async (e) => {
            const title = taskOf(e).data.task.title;
            if (title === 'poison') throw new PoisonMessageError('test poison', 'malformed');
            if (title === 'flaky' && !failedOnce.has(e.id)) {
              failedOnce.add(e.id);
              throw new Error('transient failure');
            }
            seen.push(title);
          }),
        (bus) => bus.subscribe('idle', async () => undefined, { types: ['task.deleted'] }),
      ],
    });
    try {
      expect(events.bus.kind).toBe('rabbitmq');
      // Registered consumers start at 0.
      expect(await counters(metrics, 'idle')).toEqual([0, 0, 0]);
      const s = await register(t.app);
      await t.deliverAccountEvents(); // the account event is not what this test relays
      const req = as(t.app, s.accessToken);
      for (const title of ['one', 'flaky', 'poison', 'two']) await req({ method: 'POST', url: '/v1/tasks', payload: { title } });
      expect(await drain(t.database, exchange)).toBe(4);
      // A message that is not JSON at all, straight onto the exchange.
      const conn = await connect(AMQP_URL);
      const ch = await conn.createConfirmChannel();
      ch.publish(exchange, 'task.created', Buffer.from('{not json'), { messageId: 'not-json' });
      await ch.waitForConfirms();
      await conn.close();

      // consumed: one, flaky (2nd delivery), two; failures: flaky once; dead: poison, not JSON.
      expect(await waitForCounters(metrics, 'counted', [3, 1, 2])).toEqual([3, 1, 2]);
      expect(seen.sort()).toEqual(['flaky', 'one', 'two']);
      expect(await counters(metrics, 'idle')).toEqual([0, 0, 0]);
      const text = await metrics.registry.metrics();
      expect(text).toContain('# TYPE events_consumed_total counter');
      expect(text).toContain('# TYPE events_consume_failures_total counter');
      expect(text).toContain('# TYPE events_dead_lettered_total counter');
    } finally {
      await events.stop();
      await cleanup(exchange, ['counted', 'idle']);
      await t.close();
    }
  });

  it('a handler failing on the last delivery x-delivery-limit allows counts as dead-lettered, not as a failure', async () => {
    const t = await createTestApp();
    const exchange = testExchange();
    const metrics = new Metrics();
    const attempts: number[] = [];
    const bus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog, deliveryLimit: 2, retryBaseMs: 10, recorder: metrics.consumers });
    bus.subscribe('broken', async () => {
      attempts.push(attempts.length + 1);
      throw new Error('always fails');
    });
    try {
      await bus.start();
      const s = await register(t.app);
      await t.deliverAccountEvents(); // the account event is not what this test relays
      await as(t.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'broken' } });
      expect(await drain(t.database, exchange)).toBe(1);
      // Limit 2: three deliveries, the first two requeued, the third dead-lettered by the broker.
      expect(await waitForCounters(metrics, 'broken', [0, 2, 1])).toEqual([0, 2, 1]);
      const conn = await connect(AMQP_URL);
      const ch = await conn.createChannel();
      let dead: Awaited<ReturnType<typeof ch.get>> = false;
      for (let i = 0; i < 200 && !dead; i++) {
        dead = await ch.get(`${exchange}.broken.dead`, { noAck: true });
        if (!dead) await new Promise((r) => setTimeout(r, 25));
      }
      await conn.close();
      expect(dead).not.toBe(false);
      expect(attempts).toEqual([1, 2, 3]);
    } finally {
      await bus.close();
      await cleanup(exchange, ['broken']);
      await t.close();
    }
  });
});

describe('consumer metrics on the in-process bus', () => {
  it('counts consumed, the retried failures and the dead-lettered event', async () => {
    const t = await createTestApp({ embedded: true, env: { OUTBOX_POLL_MS: '20', EVENTS_DELIVERY_LIMIT: '3' } });
    const metrics = new Metrics();
    const failedOnce = new Set<string>();
    const events = await startEvents({
      config: t.config,
      database: t.database,
      log: silent,
      metrics,
      consumers: [
        (bus) =>
          bus.subscribe('local', async (e) => {
            const title = taskOf(e).data.task.title;
            if (title === 'broken') throw new Error('always fails');
            if (title === 'flaky' && !failedOnce.has(e.id)) {
              failedOnce.add(e.id);
              throw new Error('transient failure');
            }
          }, { types: ['task.*'] }),
      ],
    });
    try {
      expect(events.bus.kind).toBe('in-process');
      const s = await register(t.app);
      await t.deliverAccountEvents(); // the account event is not what this test relays
      const req = as(t.app, s.accessToken);
      for (const title of ['one', 'flaky', 'broken']) await req({ method: 'POST', url: '/v1/tasks', payload: { title } });
      // one and flaky consumed; flaky failed once; broken failed twice, and its third delivery
      // (the limit) dead-lettered it.
      expect(await waitForCounters(metrics, 'local', [2, 3, 1])).toEqual([2, 3, 1]);
    } finally {
      await events.stop();
      await t.close();
    }
  });
});
