// The operator's dead-letter command, as an operator runs it: the built CLI against the real
// broker, listing a poison event and replaying it into its consumer's queue once fixed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskOf } from '../helpers/events.js';
import { RabbitMqEventBus } from '../../src/events/rabbitmq.js';
import { OutboxRelay } from '../../src/events/relay.js';
import { OutboxRepository } from '../../src/events/outbox.js';
import { PoisonMessageError } from '../../src/shared/poison.js';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import { AMQP_URL, deleteExchange, silentLog, testExchange } from '../helpers/amqp.js';
import { runCli } from '../helpers/process.js';

let t: TestApp;
const exchange = testExchange();
let consumer: RabbitMqEventBus;
let accept = false;
const received: string[] = [];

beforeAll(async () => {
  t = await createTestApp();
  consumer = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog });
  consumer.subscribe('ops', async (event) => {
    const e = taskOf(event);
    if (!accept && e.data.task.title === 'poison') throw new PoisonMessageError('not yet understood', 'malformed');
    received.push(e.data.task.title);
  });
  await consumer.start();
});
afterAll(async () => {
  await consumer.close();
  await deleteExchange(exchange, AMQP_URL, [`${exchange}.ops`, `${exchange}.ops.dead`]).catch(() => undefined);
  await deleteExchange(`${exchange}.dead`).catch(() => undefined);
  await t.close();
});

describe('task-api dead-letters', () => {
  it('lists a dead-lettered event without removing it, then replays it to the consumer once', async () => {
    const s = await register(t.app);
    await t.deliverAccountEvents(); // the account event is not what this test relays
    for (const title of ['fine', 'poison']) await as(t.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title } });
    const bus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog });
    const relay = new OutboxRelay({
      outbox: new OutboxRepository(t.database.db),
      publish: (events) => bus.publish(events),
      log: silentLog,
      pollMs: 20,
      batchSize: 10,
      retentionHours: 24,
    });
    await relay.drain();
    await bus.close();
    for (let i = 0; i < 200 && received.length < 1; i++) await new Promise((r) => setTimeout(r, 25));
    expect(received).toEqual(['fine']);

    const env = { AMQP_URL, AMQP_EXCHANGE: exchange, DATABASE_URL: t.testDb!.url };
    let listed = await runCli(['dead-letters', 'list', 'ops'], env);
    for (let i = 0; i < 40 && !listed.stdout.includes('dead letters: 1'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      listed = await runCli(['dead-letters', 'list', 'ops'], env);
    }
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('dead letters: 1');
    expect(listed.stdout).toContain('"type":"task.created"');
    expect(listed.stdout).toContain('"reason":"rejected"');
    // Listing left it there.
    expect((await runCli(['dead-letters', 'list', 'ops'], env)).stdout).toContain('dead letters: 1');

    accept = true; // the consumer is fixed
    const replayed = await runCli(['dead-letters', 'replay', 'ops'], env);
    expect(replayed.stdout).toContain('replayed: 1');
    for (let i = 0; i < 200 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    expect(received).toEqual(['fine', 'poison']);
    expect((await runCli(['dead-letters', 'list', 'ops'], env)).stdout).toContain('dead letters: 0');
  });
});
