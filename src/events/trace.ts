// The trace context an event carries: the W3C context of the request that made the change, so
// that its consumers continue the request's trace (src/events/rabbitmq.ts, the in-process bus).
import { context, propagation } from '@opentelemetry/api';
import type { DomainEvent } from '../shared/events.js';

/** W3C trace context of the active span; undefined when tracing is off (no SDK, no propagator). */
export function activeTraceContext(): DomainEvent['traceContext'] {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  if (!carrier.traceparent) return undefined;
  return carrier.tracestate ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate } : { traceparent: carrier.traceparent };
}
