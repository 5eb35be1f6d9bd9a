// Tracing in process: the real SDK setup (startTracing) with an in-memory exporter instead of
// OTLP, started before the application's modules load (they are imported dynamically below, so
// the instrumentations can patch them), and requests over a real socket, since the HTTP server
// instrumentation sees only real connections.
import { SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';

const exporter = new InMemorySpanExporter();
let stopTracing: (() => Promise<void>) | undefined;
let t: TestApp;
let base: string;
let token: string;

beforeAll(async () => {
  const { startTracing } = await import('../../src/observability/tracing.js');
  stopTracing = await startTracing(
    { env: 'test', tracing: { endpoint: undefined, serviceName: 'task-api-test' } },
    { spanProcessors: [new SimpleSpanProcessor(exporter)] },
  );
  const { createTestApp, register } = await import('../helpers/app.js');
  t = await createTestApp(); // PostgreSQL and Redis, response cache on
  base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  token = (await register(t.app)).accessToken;
});

afterAll(async () => {
  await t?.close();
  await stopTracing?.();
});

const isHttpServer = (s: ReadableSpan) =>
  s.kind === SpanKind.SERVER && s.instrumentationScope.name === '@opentelemetry/instrumentation-http';

/** The spans of the trace whose HTTP server span matches, once that span has ended (bounded wait). */
async function traceOf(match: (server: ReadableSpan) => boolean): Promise<{ server: ReadableSpan; spans: ReadableSpan[] }> {
  for (let i = 0; i < 200; i++) {
    const server = exporter.getFinishedSpans().find((s) => isHttpServer(s) && match(s));
    if (server) {
      const traceId = server.spanContext().traceId;
      return { server, spans: exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId) };
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no matching server span among: ${exporter.getFinishedSpans().map((s) => s.name).join(', ')}`);
}

/** Span ids from the span up to its root, following parent ids within the recorded spans. */
function ancestry(span: ReadableSpan, spans: ReadableSpan[]): string[] {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const chain: string[] = [];
  for (let s: ReadableSpan | undefined = span; s; s = byId.get(s.parentSpanContext?.spanId ?? '')) {
    chain.push(s.spanContext().spanId);
    if (chain.length > 50) break;
  }
  return chain;
}

describe('tracing', () => {
  it('one API call is one trace: HTTP server span, Fastify spans, and a child span per SQL statement', async () => {
    exporter.reset();
    const res = await fetch(`${base}/v1/tasks?status=todo`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('MISS');

    const { server, spans } = await traceOf((s) => s.attributes['http.route'] === '/v1/tasks');
    expect(server.name).toBe('GET /v1/tasks');
    expect(server.parentSpanContext).toBeUndefined(); // no traceparent sent: a new trace
    const serverId = server.spanContext().spanId;

    // Fastify's request and handler spans sit under the HTTP server span.
    const request = spans.find((s) => s.instrumentationScope.name === '@fastify/otel' && s.name === 'request');
    expect(request?.parentSpanContext?.spanId).toBe(serverId);
    expect(spans.some((s) => s.name === 'handler GET /v1/tasks')).toBe(true);

    const sql = spans.filter((s) => s.attributes['db.system'] === 'postgresql');
    expect(sql.length).toBeGreaterThan(0);
    for (const s of sql) {
      expect(s.kind).toBe(SpanKind.CLIENT);
      expect(ancestry(s, spans)).toContain(serverId);
    }
    const select = sql.find((s) => s.name === 'select tasks');
    expect(select).toBeDefined();
    expect(select!.attributes['db.operation']).toBe('select tasks');
    const statement = String(select!.attributes['db.statement']);
    expect(statement).toMatch(/^select .* from "tasks"/i);
    expect(statement).toContain('$1'); // parameterised: the user id and status are not in it
    expect(statement).not.toContain('todo');

    // No Redis spans here: Vitest imports packages by file URL, and import-in-the-middle patches
    // only `import 'ioredis'` by name, as the built server does. tracing.process.test.ts checks them.
  });

  it('continues the trace of an incoming W3C traceparent', async () => {
    exporter.reset();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    const res = await fetch(`${base}/v1/tasks`, {
      headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${parentId}-01` },
    });
    expect(res.status).toBe(200);

    const { server, spans } = await traceOf((s) => s.spanContext().traceId === traceId);
    expect(server.parentSpanContext?.spanId).toBe(parentId);
    expect(server.parentSpanContext?.isRemote).toBe(true);
    expect(spans.filter((s) => s.attributes['db.system'] === 'postgresql').length).toBeGreaterThan(0);
  });

  it('marks a failed statement as an error without its values', async () => {
    exporter.reset();
    await trace.getTracer('test').startActiveSpan('failing work', async (parent) => {
      await expect(t.database.raw.query('select $1::int as n', ['not a number'])).rejects.toThrow();
      parent.end();
    });
    const failed = exporter.getFinishedSpans().find((s) => s.attributes['db.system'] === 'postgresql');
    expect(failed?.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(failed?.attributes['error.type']).toBe('22P02'); // invalid_text_representation
    expect(JSON.stringify([failed!.attributes, failed!.status, failed!.events])).not.toContain('not a number');
  });

  it('gives log lines the active trace and span ids', async () => {
    const { traceLogFields } = await import('../../src/observability/trace-context.js');
    expect(traceLogFields()).toEqual({});
    trace.getTracer('test').startActiveSpan('logging work', (span) => {
      expect(traceLogFields()).toEqual({ trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
      span.end();
    });
  });
});
