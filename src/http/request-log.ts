// One log line per request: method, route template, status, duration. A 5xx is logged at error
// level with the error and its stack (the response itself never carries them).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyRequest {
    /** The error behind a 5xx answer, kept for the request's log line. */
    failure?: Error;
  }
}

export const requestLogPlugin = fp(
  (app: FastifyInstance) => {
    app.addHook('onResponse', (request, reply, done) => {
      // reqId is already bound to request.log.
      const line = {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        statusCode: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
      };
      if (reply.statusCode >= 500) request.log.error({ ...line, err: request.failure }, 'request failed');
      else request.log.info(line, 'request');
      done();
    });
  },
  { name: 'request-log' },
);
