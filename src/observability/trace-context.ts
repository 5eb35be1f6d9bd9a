// What the rest of the code knows about tracing: @opentelemetry/api only. Until an SDK is
// registered (src/observability/tracing.ts, loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set)
// the API's context is always empty, so these return at their first check and cost next to nothing.
import { context, isSpanContextValid, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { operationOf, type QueryObserver } from '../infra/db/observe.js';
import { VERSION } from '../version.js';

const tracer = trace.getTracer('task-api/postgres', VERSION);
const nothing = () => undefined;

/**
 * One CLIENT span per SQL statement, child of the active span (the request's). Statements run
 * outside any traced work (migrations, start-up) make no span. The statement is recorded as
 * sent: parameterised, so values never reach the span.
 */
export const sqlSpanObserver: QueryObserver = (text) => {
  const parent = context.active();
  if (trace.getSpan(parent)?.isRecording() !== true) return nothing;
  const operation = operationOf(text); // "select tasks": verb and main table
  const [verb, table] = operation.split(' ', 2);
  const span = tracer.startSpan(
    operation,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'db.system': 'postgresql',
        'db.statement': text,
        'db.operation': operation,
        // The same under the stable database conventions, which the Redis spans use.
        'db.system.name': 'postgresql',
        'db.query.text': text,
        'db.operation.name': verb!.toUpperCase(),
        ...(table === undefined ? {} : { 'db.collection.name': table }),
      },
    },
    parent,
  );
  return (error) => {
    if (error !== undefined) {
      // The SQLSTATE (e.g. 23505) or the error's name; messages can quote the values.
      const code = (error as { code?: unknown }).code;
      const type = typeof code === 'string' ? code : error instanceof Error ? error.name : 'error';
      span.setAttribute('error.type', type);
      span.setStatus({ code: SpanStatusCode.ERROR, message: type });
    }
    span.end();
  };
};

/** pino `mixin`: the active span's ids on every log line written inside a traced request. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getSpan(context.active());
  if (span === undefined) return {};
  const ids = span.spanContext();
  return isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}
