// Tracing is off unless configured, and then costs nothing: the application (built the way
// `serve` builds it) never loads the SDK, no tracer provider is registered, and the SQL observer
// and the log mixin return at their first check.
import { createRequire } from 'node:module';
import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, register, type TestApp } from '../helpers/app.js';
import { sqlSpanObserver, traceLogFields } from '../../src/observability/trace-context.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t?.close();
});

describe('tracing off', () => {
  it('loads no SDK and registers no tracer provider, while the API calls stay harmless', async () => {
    const s = await register(t.app);
    const res = await t.app.inject({ method: 'GET', url: '/v1/tasks', headers: { authorization: `Bearer ${s.accessToken}` } });
    expect(res.statusCode).toBe(200);

    const loaded = Object.keys(createRequire(import.meta.url).cache);
    expect(loaded.filter((p) => /@opentelemetry[\\/](sdk-|instrumentation|exporter)/.test(p))).toEqual([]);
    expect(loaded.some((p) => p.includes('import-in-the-middle'))).toBe(false);

    const span = trace.getTracer('probe').startSpan('probe');
    expect(span.isRecording()).toBe(false);
    span.end();
    // No span is created per statement: the observer hands back one shared no-op.
    expect(sqlSpanObserver('select 1')).toBe(sqlSpanObserver('select 2'));
    expect(traceLogFields()).toEqual({});
  });
});
