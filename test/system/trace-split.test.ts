// One trace across the split services, from the gateway's request id to the webhook: the split
// cluster (`cluster start --split`: auth, users, tasks and notifications behind the NGINX gateway,
// over RabbitMQ) with tracing on, exporting to a small OTLP/HTTP receiver on loopback (JSON
// bodies, decoded here), and a webhook receiver on loopback. A task created through the gateway
// with a chosen X-Request-Id is found by that id on the tasks service's server span; the
// notifications service processes its event and delivers the webhook in spans of the same trace,
// each service under its own service.name; the webhook arrives with a traceparent of that trace.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/operations/cluster/processes.js';
import { uniqueEmail } from '../helpers/app.js';
import { clusterFixture, HIGH_LIMITS_ENV, type Brief } from '../helpers/cluster.js';
import { jsonRequest } from '../helpers/process.js';
import { attr, SPAN_KIND, startOtlpReceiver, startWebhookReceiver, type OtlpReceiver, type WebhookReceiver } from '../helpers/receivers.js';

interface Status {
  publicUrl: string;
  allAlive: boolean;
  instances: (Brief & { service: string; metricsUrl: string })[];
}

let otlp: OtlpReceiver;
let webhooks: WebhookReceiver;

// Filled in before the cluster starts (the fixture reads it when it runs `cluster start`): the
// instances inherit OTEL_* and WEBHOOK_* from the runner (src/cluster-config.ts).
const ENV: Record<string, string> = {
  ...HIGH_LIMITS_ENV,
  OUTBOX_POLL_MS: '100',
  // Spans leave each instance within 100 ms of ending.
  OTEL_BSP_SCHEDULE_DELAY: '100',
  // The webhook receiver is on loopback, a private address.
  WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
};

beforeAll(async () => {
  otlp = await startOtlpReceiver();
  webhooks = await startWebhookReceiver();
  ENV.OTEL_EXPORTER_OTLP_ENDPOINT = otlp.endpoint;
});

afterAll(async () => {
  await otlp?.close();
  await webhooks?.close();
});

// Registered after the receivers' beforeAll: it runs after them, with ENV complete.
const fx = clusterFixture<Status>('task-api-trace-split-', ['--split', '--replicas', '0'], ENV);

describe('one trace across the split services', () => {
  it('from the request id on the tasks service to the webhook delivered by the notifications service', async () => {
    const url = fx.started().publicUrl;
    const reg = await jsonRequest(`${url}/v1/auth/register`, 'POST', { email: uniqueEmail('trace-split'), password: 'correct horse battery' });
    expect(reg.status).toBe(201);
    const token = reg.body!.accessToken as string;
    const hook = await jsonRequest(`${url}/v1/webhooks`, 'POST', { url: `${webhooks.url}/hook`, events: ['task.created'] }, token);
    expect(hook.status).toBe(201);

    const requestId = `trace-split-${randomBytes(6).toString('hex')}`;
    const res = await fetch(`${url}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': requestId },
      body: JSON.stringify({ title: 'traced across the services' }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-request-id')).toBe(requestId);
    const taskId = ((await res.json()) as { id: string }).id;

    await waitUntil('the webhook POST', async () => webhooks.received.length > 0, 60_000);
    expect(webhooks.received).toHaveLength(1);
    expect((JSON.parse(webhooks.received[0]!.body) as { event: { taskId: string } }).event.taskId).toBe(taskId);
    const traceparent = String(webhooks.received[0]!.headers.traceparent);
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const traceId = traceparent.split('-')[1]!;

    // The tasks service's server span, found by the request id the gateway passed on.
    const serverSpan = () => otlp.spans.find((s) => s.kind === SPAN_KIND.server && attr(s, 'http.request.id') === requestId && s.scope === '@opentelemetry/instrumentation-http');
    await waitUntil(`the server span of request ${requestId}`, async () => serverSpan() !== undefined, 30_000);
    expect(serverSpan()).toMatchObject({ service: 'task-api-tasks', name: 'POST /v1/tasks', traceId });

    // The notifications service's consumer and delivery spans, in the same trace (they end
    // before the webhook's answer is recorded; the exporter sends them within 100 ms).
    const inTrace = () => otlp.spans.filter((s) => s.traceId === traceId);
    const consumer = () => inTrace().find((s) => s.kind === SPAN_KIND.consumer && s.name === 'process notifications');
    const delivery = () => inTrace().find((s) => s.name === 'webhook delivery');
    await waitUntil('the consumer and delivery spans', async () => consumer() !== undefined && delivery() !== undefined, 30_000);
    expect(consumer()!.service).toBe('task-api-notifications');
    expect(delivery()!.service).toBe('task-api-notifications');
    expect(attr(delivery()!, 'task_api.event.type')).toBe('task.created');
    // The webhook's traceparent names a span of this trace in the notifications service: the
    // POST's client span, under the delivery span.
    const posted = inTrace().find((s) => s.spanId === traceparent.split('-')[2]);
    expect(posted).toMatchObject({ service: 'task-api-notifications', parentSpanId: delivery()!.spanId });

    // Every span of the trace names its service of the split (none has the monolith's task-api).
    const services = [...new Set(inTrace().map((s) => s.service))];
    expect(services).toEqual(expect.arrayContaining(['task-api-tasks', 'task-api-notifications']));
    for (const s of services) expect(s).toMatch(/^task-api-(auth|users|tasks|notifications)$/);
  });

  it('stop ends every recorded process and frees its ports', async () => {
    await fx.stopAndCheck();
  });
});
