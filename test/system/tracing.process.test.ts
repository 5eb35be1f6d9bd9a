// The built server with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a small OTLP/HTTP receiver on
// loopback: the exporter really sends (JSON, decoded here), ioredis loaded through ESM import is
// instrumented, log lines carry the trace ids, SIGTERM flushes what is buffered, and without the
// endpoint nothing is traced at all.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { uniqueEmail } from '../helpers/app.js';
import { jsonRequest, startServer } from '../helpers/process.js';
import { attr, SPAN_KIND, startOtlpReceiver, type OtlpReceiver, type OtlpSpan } from '../helpers/receivers.js';
import { servicesEnv } from '../helpers/server-fixture.js';

const SERVER = SPAN_KIND.server;
const CLIENT = SPAN_KIND.client;

let receiver: OtlpReceiver;
let endpoint: string;
let posts: OtlpReceiver['posts'];
let spans: OtlpSpan[];
let db: TestDatabase;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  ({ endpoint, posts, spans } = receiver);
  db = await createTestDatabase();
});

afterAll(async () => {
  await receiver.close();
  await db.drop();
});

const serverEnv = (extra: Record<string, string>) => ({
  ...servicesEnv(db),
  SHUTDOWN_DRAIN_MS: '0',
  RATE_LIMIT_POINTS: '1000',
  ...extra,
});

const newTraceparent = () => {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex');
  return { traceId, parentId, header: `00-${traceId}-${parentId}-01` };
};

const traceSpans = (traceId: string) => spans.filter((s) => s.traceId === traceId);

/** Ids from the span up to the root of its trace, within what was received. */
function ancestry(span: OtlpSpan): string[] {
  const byId = new Map(traceSpans(span.traceId).map((s) => [s.spanId, s]));
  const chain: string[] = [];
  for (let s: OtlpSpan | undefined = span; s && chain.length < 50; s = byId.get(s.parentSpanId ?? '')) chain.push(s.spanId);
  return chain;
}

async function listTasks(url: string, token: string, traceparent: string) {
  const res = await fetch(`${url}/v1/tasks`, { headers: { authorization: `Bearer ${token}`, traceparent } });
  await res.text();
  return res.status;
}

describe('tracing in the built server', () => {
  it('exports the spans of real requests to the OTLP/HTTP endpoint: HTTP, Fastify, SQL and Redis, in one trace', async () => {
    const server = await startServer(
      serverEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: 'task-api-otlp-test', OTEL_BSP_SCHEDULE_DELAY: '100' }),
    );
    try {
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: uniqueEmail('otlp'), password: 'correct horse battery' });
      expect(reg.status).toBe(201);
      const token = reg.body!.accessToken as string;
      const caller = newTraceparent();
      expect(await listTasks(server.url, token, caller.header)).toBe(200);

      // Bounded wait for the batch (100 ms delay) to reach the receiver.
      const complete = () => {
        const t = traceSpans(caller.traceId);
        return t.some((s) => s.kind === SERVER) && t.some((s) => attr(s, 'db.system') === 'postgresql') && t.some((s) => s.scope.includes('ioredis'));
      };
      for (let i = 0; i < 200 && !complete(); i++) await new Promise((r) => setTimeout(r, 50));

      expect(posts.some((p) => p.path === 'POST /v1/traces' && p.contentType === 'application/json')).toBe(true);
      const t = traceSpans(caller.traceId);
      expect(t.every((s) => s.service === 'task-api-otlp-test')).toBe(true);
      const http = t.find((s) => s.kind === SERVER && s.scope === '@opentelemetry/instrumentation-http');
      expect(http?.name).toBe('GET /v1/tasks');
      expect(http?.parentSpanId).toBe(caller.parentId); // the caller's traceparent, continued

      const sql = t.filter((s) => attr(s, 'db.system') === 'postgresql');
      expect(sql.length).toBeGreaterThan(0);
      for (const s of sql) {
        expect(s.kind).toBe(CLIENT);
        expect(ancestry(s)).toContain(http!.spanId);
        expect(attr(s, 'db.statement')).toContain('$1');
      }
      // Redis commands (response cache, rate limiter): ioredis was imported by name from ESM and
      // patched through the import-in-the-middle loader hook.
      const redis = t.filter((s) => s.scope === '@opentelemetry/instrumentation-ioredis');
      expect(redis.length).toBeGreaterThan(0);
      for (const s of redis) {
        expect(s.kind).toBe(CLIENT);
        expect(ancestry(s)).toContain(http!.spanId);
      }
      expect(t.some((s) => s.scope === '@fastify/otel' && s.name === 'handler GET /v1/tasks')).toBe(true);

      // Log correlation: the request's log line carries its trace and a span of it.
      const line = server.logs().find((l) => l.route === '/v1/tasks' && l.method === 'GET');
      expect(line?.trace_id).toBe(caller.traceId);
      expect(t.map((s) => s.spanId)).toContain(line?.span_id);
      // Probes are not traced (checked once SIGTERM has flushed everything).
      expect((await jsonRequest(`${server.url}/health`, 'GET')).status).toBe(200);
      expect(await server.kill('SIGTERM')).toBe(0);
    } finally {
      await server.kill('SIGKILL');
    }
    expect(spans.some((s) => s.name.includes('/health') || attr(s, 'http.route')?.startsWith('/health'))).toBe(false);
  });

  it('flushes buffered spans on SIGTERM before exiting', async () => {
    // A batch delay far longer than the test: spans leave only through the flush at shutdown.
    const server = await startServer(serverEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '600000' }));
    try {
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: uniqueEmail('flush'), password: 'correct horse battery' });
      const caller = newTraceparent();
      expect(await listTasks(server.url, reg.body!.accessToken as string, caller.header)).toBe(200);
      expect(await server.kill('SIGTERM')).toBe(0);
      const t = traceSpans(caller.traceId);
      expect(t.some((s) => s.kind === SERVER && s.parentSpanId === caller.parentId)).toBe(true);
      expect(t.every((s) => s.service === 'task-api')).toBe(true); // OTEL_SERVICE_NAME's default
    } finally {
      await server.kill('SIGKILL');
    }
  });

  it('without OTEL_EXPORTER_OTLP_ENDPOINT traces nothing: no trace ids in logs, even for a traceparent', async () => {
    const server = await startServer(serverEnv({}));
    try {
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: uniqueEmail('off'), password: 'correct horse battery' });
      expect(await listTasks(server.url, reg.body!.accessToken as string, newTraceparent().header)).toBe(200);
    } finally {
      expect(await server.kill('SIGTERM')).toBe(0);
    }
    const lines = server.logs();
    expect(lines.some((l) => l.route === '/v1/tasks')).toBe(true);
    for (const l of lines) {
      expect(l).not.toHaveProperty('trace_id');
      expect(l).not.toHaveProperty('span_id');
    }
  });
});
