// The broker goes away while tasks are created: the API keeps answering 201, the events wait in
// the outbox, and every one arrives once the broker is back. A RabbitMQ node of this test's own
// (test/helpers/rabbitmq-server.ts) is stopped and started again; the shared broker is untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startEvents, type EventsRuntime } from '../../src/events/runtime.js';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import { readExchange, testExchange, type Reader } from '../helpers/amqp.js';
import { ownRabbit, rabbitmqAvailable, type OwnRabbit } from '../helpers/rabbitmq-server.js';

const pending = async (t: TestApp) =>
  (await t.database.raw.query<{ n: number }>('select count(*)::int as n from outbox where published_at is null'))[0]!.n;

describe.skipIf(!rabbitmqAvailable())('broker outage', () => {
  let rabbit: OwnRabbit;
  let t: TestApp;
  let events: EventsRuntime | undefined;
  let reader: Reader | undefined;
  beforeAll(async () => {
    rabbit = await ownRabbit();
    await rabbit.start();
  });
  afterAll(async () => {
    await reader?.close();
    await events?.stop();
    await t?.close();
    await rabbit?.destroy();
  });

  it('API answers 201 while the broker is down; after it returns every event arrives, none lost', async () => {
    const exchange = testExchange();
    const queue = `${exchange}.reader`;
    t = await createTestApp({ env: { AMQP_URL: rabbit.url, AMQP_EXCHANGE: exchange, OUTBOX_POLL_MS: '50' } });
    events = await startEvents({ config: t.config, database: t.database, log: pino({ level: 'silent' }), consumers: [] });
    expect(events.bus.kind).toBe('rabbitmq');
    // A durable queue: it and its binding survive the broker's restart.
    const seen: Reader['messages'] = [];
    reader = await readExchange(exchange, rabbit.url, queue, seen);

    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    const create = async (title: string) => (await req({ method: 'POST', url: '/v1/tasks', payload: { title } })).statusCode;
    for (let i = 0; i < 5; i++) expect(await create(`before ${i}`)).toBe(201);
    // The sign-up's user.created, then the five task.created.
    await reader.waitFor(6);
    expect(seen).toHaveLength(6);

    await reader.close();
    reader = undefined;
    await rabbit.stop();
    for (let i = 0; i < 20; i++) expect(await create(`during ${i}`)).toBe(201);
    expect(await pending(t)).toBeGreaterThan(0);

    await rabbit.start();
    reader = await readExchange(exchange, rabbit.url, queue, seen);
    for (let i = 0; i < 1200 && (await pending(t)) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await pending(t)).toBe(0);
    await reader.waitFor(26);
    const counts = reader.counts();
    const [row] = await t.database.raw.query<{ ids: string[] }>('select array_agg(id::text) as ids from outbox');
    expect(new Set(counts.keys())).toEqual(new Set(row!.ids));
    expect(counts.size).toBe(26);
  });
});
