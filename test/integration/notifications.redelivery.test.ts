// At-least-once delivery meets the idempotent notifications consumer: a consumer whose broker
// connection dies before it acks (its socket destroyed, as when the process is killed) gets its
// message redelivered by RabbitMQ to another consumer on the same queue, and the effect (the
// in-app notification, the processed_events row) exists exactly once.
import type { Socket } from 'node:net';
import { connect, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RabbitMqEventBus } from '../../src/events/rabbitmq.js';
import { CONSUMER as NOTIFICATIONS_CONSUMER, createNotificationsConsumer } from '../../src/modules/notifications/handler.js';
import type { EventHandler, TaskEvent } from '../../src/shared/events.js';
import { createTestApp, register, type TestApp } from '../helpers/app.js';
import { AMQP_URL, deleteExchange, silentLog, testExchange } from '../helpers/amqp.js';
import { taskEvent } from '../helpers/events.js';

let t: TestApp;
let handle: EventHandler;

beforeAll(async () => {
  t = await createTestApp();
  handle = createNotificationsConsumer({ database: t.database, config: t.config }).handle;
});
afterAll(() => t.close());

const count = async (table: string, where: string, params: unknown[]) =>
  (await t.database.raw.query<{ n: number }>(`select count(*)::int as n from ${table} where ${where}`, params))[0]!.n;

const effects = async (event: TaskEvent) => ({
  notifications: await count('notifications', 'event_id = $1', [event.id]),
  processed: await count('processed_events', 'consumer = $1 and event_id = $2', [NOTIFICATIONS_CONSUMER, event.id]),
});

async function until(done: () => boolean, tries = 400): Promise<void> {
  for (let i = 0; i < tries && !done(); i++) await new Promise((r) => setTimeout(r, 25));
}

/**
 * Kills the bus's broker connection abruptly (the socket destroyed: no ack, no close handshake),
 * then closes the bus so that it does not reconnect and consume again.
 */
async function killConnection(bus: RabbitMqEventBus): Promise<void> {
  const conn = (bus as unknown as { conn?: ChannelModel }).conn;
  if (!conn) throw new Error('the bus has no connection');
  const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  // With an error: amqplib watches the socket's 'error' and 'end', not 'close'.
  (conn.connection as unknown as { stream: Socket }).stream.destroy(new Error('killed before the ack'));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
  clearTimeout(timer);
  await bus.close();
}

describe('notifications consumer on RabbitMQ: killed before the ack', () => {
  it.each([
    ['after the effect', true],
    ['before the effect', false],
  ] as const)('connection dies %s -> redelivered to a second consumer, the effect happens once', async (_when, effectFirst) => {
    const exchange = testExchange();
    const queue = `${exchange}.${NOTIFICATIONS_CONSUMER}`;
    const s = await register(t.app);
    const event = taskEvent(s.user.id, 'task.created', `Redelivered ${effectFirst ? 'after' : 'before'}`);

    // The first consumer: runs the real handler (or not), then loses its connection and never acks.
    let release!: () => void;
    const never = new Promise<void>((r) => (release = r));
    const first = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog, prefetch: 1 });
    const firstCalls: string[] = [];
    let firstDied = false;
    first.subscribe(NOTIFICATIONS_CONSUMER, async (e) => {
      firstCalls.push(e.id);
      if (effectFirst) await handle(e);
      await killConnection(first);
      firstDied = true;
      await never; // the "process" is gone: this handler never returns while the test runs
    });

    const second = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog, prefetch: 1 });
    const secondCalls: string[] = [];
    const secondDone: string[] = [];
    second.subscribe(NOTIFICATIONS_CONSUMER, async (e) => {
      secondCalls.push(e.id);
      await handle(e);
      secondDone.push(e.id); // acked right after this returns
    });

    const publisher = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog });
    try {
      await first.start(); // declares the queue and its binding
      await publisher.publish([event]);
      await until(() => firstDied);
      expect(firstDied).toBe(true);
      expect(await effects(event)).toEqual(effectFirst ? { notifications: 1, processed: 1 } : { notifications: 0, processed: 0 });

      // The broker saw the connection go without an ack: it redelivers to the next consumer.
      await second.start();
      await until(() => secondDone.length > 0);
      await second.close(); // after the ack: nothing is left unacked

      expect(firstCalls).toEqual([event.id]);
      expect(secondCalls).toEqual([event.id]);
      expect(await effects(event)).toEqual({ notifications: 1, processed: 1 });
      // Acked by the second consumer: no message left in the queue, none dead-lettered.
      const conn = await connect(AMQP_URL);
      try {
        const ch = await conn.createChannel();
        expect((await ch.checkQueue(queue)).messageCount).toBe(0);
        expect((await ch.checkQueue(`${queue}.dead`)).messageCount).toBe(0);
      } finally {
        await conn.close();
      }
    } finally {
      release();
      await Promise.all([first.close(), second.close(), publisher.close()]);
      await deleteExchange(exchange, AMQP_URL, [queue, `${queue}.dead`]).catch(() => undefined);
      await deleteExchange(`${exchange}.dead`).catch(() => undefined);
    }
  });
});
