// What the rest of the code knows about tracing: @opentelemetry/api only. Until an SDK is
// registered (src/observability/tracing.ts, loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set)
// the API's context is always empty, so these return at their first check and cost next to nothing.
import { context, isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
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

/** The W3C trace context an event carries (TaskEvent['traceContext']): its writer's span. */
export interface CarriedTraceContext {
  traceparent: string;
  tracestate?: string | undefined;
}

/** What a consumer span names of the event it processes. */
export interface TracedEvent {
  id: string;
  type: string;
  traceContext?: CarriedTraceContext | undefined;
}

const eventTracer = trace.getTracer('task-api/events', VERSION);

/** The context of a carried trace context (the root context when there is none, or no valid one). */
export function contextOf(carried: CarriedTraceContext | undefined): Context {
  return typeof carried === 'object' && carried !== null ? propagation.extract(ROOT_CONTEXT, carried) : ROOT_CONTEXT;
}

/**
 * Where the processing of an event continues its writer's trace: the active span when it is of
 * that trace already (the amqplib instrumentation's span of the delivery, whose parent is the
 * message's traceparent), else the event's own trace context. An event without one starts a trace.
 */
function consumerParent(event: Partial<TracedEvent>): Context {
  const active = context.active();
  const carried = contextOf(event.traceContext);
  const activeIds = trace.getSpanContext(active);
  const carriedIds = trace.getSpanContext(carried);
  if (activeIds && isSpanContextValid(activeIds) && (carriedIds === undefined || activeIds.traceId === carriedIds.traceId)) return active;
  return carried;
}

/**
 * Runs a consumer's handler for one event in a CONSUMER span `process <consumer>`, a child of the
 * trace that wrote the event, so that what the handler does (its SQL, the rows it leaves for the
 * delivery worker) is seen in the writing request's trace. Without a tracing SDK the span is a
 * no-op and fn runs as it is. The event is as it arrived, unchecked: the handler judges it.
 */
export async function withConsumerSpan<T>(consumer: string, event: TracedEvent, system: string, fn: () => Promise<T>): Promise<T> {
  const e: Partial<TracedEvent> = typeof event === 'object' && event !== null ? event : {};
  const parent = consumerParent(e);
  const span = eventTracer.startSpan(
    `process ${consumer}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': system,
        'messaging.operation.type': 'process',
        'messaging.consumer.group.name': consumer,
        ...(typeof e.id === 'string' ? { 'messaging.message.id': e.id } : {}),
        ...(typeof e.type === 'string' ? { 'task_api.event.type': e.type } : {}),
      },
    },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), fn);
  } catch (err) {
    const type = err instanceof Error ? err.name : 'error';
    span.setAttribute('error.type', type);
    // The error's name only: messages can quote values.
    span.setStatus({ code: SpanStatusCode.ERROR, message: type });
    throw err;
  } finally {
    span.end();
  }
}

/**
 * The trace headers of the active context (traceparent, tracestate) for an outgoing request (the
 * HTTP instrumentation, when on, puts its client span's in their place: the same trace). With no
 * tracing SDK, `fallback`'s (the trace context an event carries), so that the receiver can still
 * join the writer's trace.
 */
export function traceHeaders(fallback?: CarriedTraceContext): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  if (carrier.traceparent === undefined && fallback) {
    carrier.traceparent = fallback.traceparent;
    if (fallback.tracestate) carrier.tracestate = fallback.tracestate;
  }
  return carrier;
}

/**
 * The trace context an event carries (outbox, AMQP headers): the W3C context of the active span,
 * the request that made the change, so that its consumers continue that trace. Undefined when
 * tracing is off (no SDK, no propagator).
 */
export function activeTraceContext(): CarriedTraceContext | undefined {
  const { traceparent, tracestate } = traceHeaders();
  if (!traceparent) return undefined;
  return tracestate ? { traceparent, tracestate } : { traceparent };
}
