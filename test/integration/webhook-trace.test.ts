// One trace from a request to its webhook, in one process with tracing on (spans recorded in
// memory): the request's server span carries its request id (X-Request-Id), the notifications
// consumer processes the event (through RabbitMQ) in a span of the request's trace, and the
// webhook delivery runs in a span of that trace and sends the receiver a traceparent of it.
// test/system/trace-split.test.ts checks the same across the services of the split cluster.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventsRuntime } from '../../src/events/runtime.js';
import type { TestApp } from '../helpers/app.js';

const exporter = new InMemorySpanExporter();
let stopTracing: (() => Promise<void>) | undefined;
let t: TestApp;
let events: EventsRuntime | undefined;
let receiver: Server;
let receiverUrl: string;
let exchange: string;
/** The consumers subscribed (their queues are deleted afterwards). */
const consumers: string[] = [];
const hooks: { headers: IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  // The SDK first, then the modules it instruments (HTTP, Fastify, amqplib).
  const { startTracing } = await import('../../src/observability/tracing.js');
  stopTracing = await startTracing(
    { env: 'test', tracing: { endpoint: undefined, serviceName: 'task-api-test' } },
    { spanProcessors: [new SimpleSpanProcessor(exporter)] },
  );
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hooks.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;

  const { createTestApp } = await import('../helpers/app.js');
  const { AMQP_URL, testExchange } = await import('../helpers/amqp.js');
  const { startEvents } = await import('../../src/events/runtime.js');
  const { RabbitMqEventBus } = await import('../../src/events/rabbitmq.js');
  const { ALL_MODULES } = await import('../../src/modules/registry.js');
  t = await createTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_TIMEOUT_MS: '2000' } });
  exchange = testExchange();
  const log = pino({ level: 'silent' });
  const noop = () => undefined;
  const recorder = { subscribed: (name: string) => void consumers.push(name), consumed: noop, failed: noop, deadLettered: noop };
  events = await startEvents({
    config: { ...t.config, events: { ...t.config.events, pollMs: 50 } },
    bus: new RabbitMqEventBus({ url: AMQP_URL, exchange, log, recorder }),
    database: t.database,
    log,
    relay: true,
    consumers: t.app.modules.consumers(ALL_MODULES),
  });
});

afterAll(async () => {
  await events?.stop();
  await t?.close();
  await stopTracing?.();
  await new Promise((resolve) => receiver?.close(resolve));
  if (exchange) {
    const { deleteExchange } = await import('../helpers/amqp.js');
    await deleteExchange(exchange, undefined, consumers.flatMap((c) => [`${exchange}.${c}`, `${exchange}.${c}.dead`])).catch(() => undefined);
    await deleteExchange(`${exchange}.dead`).catch(() => undefined);
  }
});

const str = (s: ReadableSpan, key: string) => s.attributes[key];
const traceIdOf = (traceparent: string | string[] | undefined) => /^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$/.exec(String(traceparent))?.[1];

async function post(url: string, body: object, token?: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('a task write traced to its webhook', () => {
  it('the server span names the request id; the consumer and the webhook delivery continue its trace; the webhook gets its traceparent', async () => {
    const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const reg = await post(`${base}/v1/auth/register`, { email: `trace-${randomBytes(4).toString('hex')}@example.test`, password: 'correct horse battery' });
    expect(reg.status).toBe(201);
    const token = reg.body.accessToken as string;
    expect((await post(`${base}/v1/webhooks`, { url: receiverUrl, events: ['task.created'] }, token)).status).toBe(201);

    const requestId = `trace-${randomBytes(6).toString('hex')}`;
    const task = await post(`${base}/v1/tasks`, { title: 'traced to the webhook' }, token, { 'x-request-id': requestId });
    expect(task.status).toBe(201);

    // Bounded: the relay polls every 50 ms, the delivery worker every second.
    for (let i = 0; i < 300 && hooks.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(hooks).toHaveLength(1);
    const hookTrace = traceIdOf(hooks[0]!.headers.traceparent);
    expect(hookTrace).toBeDefined();
    expect((JSON.parse(hooks[0]!.body) as { event: { taskId: string } }).event.taskId).toBe(task.body.id);

    // Spans end after the answer: wait (bounded) for the delivery span.
    const spans = () => exporter.getFinishedSpans();
    for (let i = 0; i < 100 && !spans().some((s) => s.name === 'webhook delivery'); i++) await new Promise((r) => setTimeout(r, 20));

    const server = spans().filter((s) => s.kind === SpanKind.SERVER && str(s, 'http.request.id') === requestId);
    expect(server.map((s) => s.instrumentationScope.name)).toEqual(['@opentelemetry/instrumentation-http']);
    const traceId = server[0]!.spanContext().traceId;
    expect(hookTrace).toBe(traceId);
    // Fastify's request span names it too.
    expect(spans().some((s) => s.name === 'request' && str(s, 'http.request.id') === requestId && s.spanContext().traceId === traceId)).toBe(true);

    const inTrace = spans().filter((s) => s.spanContext().traceId === traceId);
    const consumer = inTrace.find((s) => s.name === 'process notifications');
    expect(consumer?.kind).toBe(SpanKind.CONSUMER);
    expect(consumer?.attributes).toMatchObject({ 'messaging.system': 'rabbitmq', 'messaging.consumer.group.name': 'notifications', 'task_api.event.type': 'task.created' });
    // The consumer's SQL (the notification, the delivery row) is part of it.
    expect(inTrace.some((s) => s.attributes['db.system'] === 'postgresql' && s.parentSpanContext?.spanId === consumer!.spanContext().spanId)).toBe(true);

    const delivery = inTrace.find((s) => s.name === 'webhook delivery');
    expect(delivery?.attributes).toMatchObject({ 'task_api.event.type': 'task.created', 'task_api.webhook.delivery.attempt': 1, 'http.response.status_code': 204 });
    // The POST itself: the HTTP client span under the delivery span, whose id the traceparent names.
    const client = inTrace.find((s) => s.kind === SpanKind.CLIENT && s.parentSpanContext?.spanId === delivery!.spanContext().spanId && s.instrumentationScope.name === '@opentelemetry/instrumentation-http');
    expect(client).toBeDefined();
    expect(hooks[0]!.headers.traceparent).toBe(`00-${traceId}-${client!.spanContext().spanId}-01`);
  });
});
