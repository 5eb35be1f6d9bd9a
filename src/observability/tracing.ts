// OpenTelemetry tracing: the SDK, its exporter and the instrumentations. This module is imported
// (dynamically, by the CLI) only when OTEL_EXPORTER_OTLP_ENDPOINT is set, and before any module
// it instruments, so that the instrumentations can patch them as they load. With tracing off it is
// never loaded, and the @opentelemetry/api calls elsewhere (SQL spans, log fields) are no-ops.
import { register } from 'node:module';
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { AmqplibInstrumentation } from '@opentelemetry/instrumentation-amqplib';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { core, NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { createAddHookMessageChannel } from 'import-in-the-middle';
import type { Config } from '../config.js';
import { VERSION } from '../version.js';

/** Flushes what is buffered and stops the SDK. */
export type StopTracing = () => Promise<void>;

export interface TracingOptions {
  /** Replace the OTLP/HTTP exporter (tests record spans in memory). */
  spanProcessors?: SpanProcessor[];
}

/**
 * The request id (request.id: the gateway's X-Request-Id, or one generated here; the `reqId` of
 * the log line and the `requestId` of a problem), on the HTTP server span and Fastify's request
 * span: a request quoted by its id is found among the traces.
 */
export const ATTR_REQUEST_ID = 'http.request.id';

/** Probes and scrapes are not traced: they would drown the requests that matter. */
const UNTRACED = new Set(['/health', '/health/live', '/metrics']);
const untraced = (url: string | undefined) => UNTRACED.has((url ?? '').split('?', 1)[0]!);

let started = false;

export async function startTracing(config: Pick<Config, 'tracing' | 'env'>, options: TracingOptions = {}): Promise<StopTracing> {
  if (started) throw new Error('tracing is already started in this process');
  const { endpoint, serviceName } = config.tracing;
  let spanProcessors = options.spanProcessors;
  if (spanProcessors === undefined) {
    if (endpoint === undefined) throw new Error('startTracing needs OTEL_EXPORTER_OTLP_ENDPOINT (or span processors)');
    // OTLP/HTTP with JSON bodies; the generic endpoint gets the signal path, as the spec says.
    const exporter = new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` });
    // Batch delay, size and timeout follow OTEL_BSP_* when set (5 s delay by default).
    spanProcessors = [new BatchSpanProcessor(exporter)];
  }
  started = true;

  // ESM: `import` does not go through require(), so modules loaded that way (ioredis from our
  // ESM build) are patched by import-in-the-middle's loader hook. The message channel limits the
  // hook to the modules an instrumentation asked for; it must exist before the instrumentations
  // are created, since each one announces its modules through it as it is enabled.
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, registerOptions);

  const instrumentations: Instrumentation[] = [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (request) => untraced(request.url),
      // The exporter's own requests are suppressed by the SDK; other outgoing calls need a parent.
      requireParentforOutgoingSpans: true,
    }),
    new IORedisInstrumentation({
      // Key names and values stay out of spans (keys carry user ids and token hashes).
      dbStatementSerializer: (command) => command,
    }),
    // RabbitMQ publish/consume spans, ready for when amqplib is used (it is not loaded today).
    new AmqplibInstrumentation(),
    // The Fastify team's plugin, registered on every Fastify instance as it is created: a
    // `request` span (child of the HTTP server span) and a `handler` span per route.
    new FastifyOtelInstrumentation({
      registerOnInitialization: true,
      instrumentHooks: false,
      ignorePaths: (route) => untraced(route.url),
      // Called as the request span starts, in the context of the HTTP server span (its parent).
      requestHook: (span, request) => {
        span.setAttribute(ATTR_REQUEST_ID, request.id);
        const server = trace.getSpan(context.active());
        if (server !== undefined && server !== span) server.setAttribute(ATTR_REQUEST_ID, request.id);
      },
      // Handlers are anonymous: name their spans after the route instead of the plugin chain.
      lifecycleHook: (span, { hookName, request }) => {
        if (hookName === 'handler') span.updateName(`handler ${request.method} ${request.routeOptions.url ?? 'unmatched'}`);
      },
    }),
  ];

  const sdk = new NodeSDK({
    serviceName,
    resource: defaultResource().merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: serviceName,
        [ATTR_SERVICE_VERSION]: VERSION,
        'deployment.environment.name': config.env,
      }),
    ),
    spanProcessors,
    // Traces only: no OTLP metrics or logs (metrics are Prometheus, logs are pino).
    metricReaders: [],
    logRecordProcessors: [],
    textMapPropagator: new core.W3CTraceContextPropagator(),
    instrumentations,
  });
  sdk.start();
  // The loader runs on its own thread: wait until it knows every module to hook.
  await waitForAllMessagesAcknowledged();

  let stopping: Promise<void> | undefined;
  return () => (stopping ??= sdk.shutdown());
}
