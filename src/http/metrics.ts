// Request metrics: every response is observed into http_request_duration_seconds, labelled with
// the route TEMPLATE (/v1/tasks/:id), never the raw URL. Registered only when METRICS_ENABLED.
// /metrics itself is served on its own port (src/observability/metrics-server.ts), not here.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { UNMATCHED_ROUTE, type Metrics } from '../observability/metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Present when METRICS_ENABLED (tests read `await app.metrics.registry.metrics()`). */
    metrics?: Metrics;
  }
}

export const metricsPlugin = fp(
  (app: FastifyInstance, opts: { metrics: Metrics }) => {
    const { metrics } = opts;
    app.decorate('metrics', metrics);
    // Read at scrape time: the cache and rate-limit plugins decorate the app with their counters.
    metrics.readAppStats(() => ({ cacheStats: app.cacheStats, rateLimitStats: app.rateLimitStats }));
    app.addHook('onResponse', (request, reply, done) => {
      metrics.observeRequest(request.method, request.routeOptions.url ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000);
      done();
    });
  },
  { name: 'metrics' },
);
