// With tracing on, a task write's event carries the request's W3C trace context (in the outbox
// payload and the AMQP headers), so consumers can continue the trace.
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { deleteExchange, readExchange, silentLog, testExchange } from '../helpers/amqp.js';

const exporter = new InMemorySpanExporter();
let stopTracing: (() => Promise<void>) | undefined;
let t: TestApp;
const exchange = testExchange();

beforeAll(async () => {
  const { startTracing } = await import('../../src/observability/tracing.js');
  stopTracing = await startTracing(
    { env: 'test', tracing: { endpoint: undefined, serviceName: 'task-api-test' } },
    { spanProcessors: [new SimpleSpanProcessor(exporter)] },
  );
  const { createTestApp } = await import('../helpers/app.js');
  t = await createTestApp();
});

afterAll(async () => {
  await t?.close();
  await stopTracing?.();
  await deleteExchange(exchange).catch(() => undefined);
});

describe('event trace context', () => {
  it('the outbox payload and the published message carry the trace of the request that wrote the task', async () => {
    const { register } = await import('../helpers/app.js');
    const { OutboxRepository } = await import('../../src/events/outbox.js');
    const { OutboxRelay } = await import('../../src/events/relay.js');
    const { RabbitMqEventBus } = await import('../../src/events/rabbitmq.js');
    const { AMQP_URL } = await import('../helpers/amqp.js');
    const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const token = (await register(t.app)).accessToken;
    const res = await fetch(`${base}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      body: JSON.stringify({ title: 'traced' }),
    });
    expect(res.status).toBe(201);
    const task = (await res.json()) as { id: string };
    const [row] = await new OutboxRepository(t.database.db).ofAggregate(task.id);
    const traceparent = row!.payload.traceContext?.traceparent ?? '';
    // The caller's trace, a span of this service's request.
    expect(traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(row!.traceContext).toEqual(row!.payload.traceContext);

    const reader = await readExchange(exchange);
    const bus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: silentLog });
    const relay = new OutboxRelay({ outbox: new OutboxRepository(t.database.db), publish: (e) => bus.publish(e), log: silentLog, pollMs: 20, batchSize: 100, retentionHours: 24 });
    await relay.drain();
    await bus.close();
    await reader.waitFor(1);
    await reader.close();
    const msg = reader.messages.find((m) => m.properties.messageId === row!.id);
    const header: unknown = msg?.properties.headers?.traceparent;
    // Same trace (the amqplib instrumentation may put its publish span, a child, in the header).
    expect(header).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(JSON.parse(msg!.content.toString('utf8'))).toEqual(row!.payload);
  });
});
