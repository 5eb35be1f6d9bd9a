// The answer deadline (HTTP_ANSWER_DEADLINE_MS): a request still without an answer when it
// passes (counted from its arrival, or from the end of its body) gets 503 problem+json with Retry-After, rather than hanging until the client or the load
// balancer gives up. What it protects against is a dependency that accepts a connection and then
// says nothing: a PostgreSQL server paused or cut off mid-query, where no driver timeout fires
// (the TCP connection stays open). The handler runs on; its late answer is dropped (logged).
//
// A write answered this way may still commit once the database wakes. The client cannot tell, as
// after any timeout; with an Idempotency-Key its retry is safe: the 503 releases the key's claim,
// but the key's seed, and so the id of what it creates, is the same for the retry, which meets
// the first run's row instead of making a second one (src/http/idempotency.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { serviceUnavailable } from '../shared/errors.js';

export interface DeadlineOptions {
  /** Milliseconds from the request's arrival; 0: no deadline. */
  ms: number;
}

export const deadlinePlugin = fp(
  (app: FastifyInstance, opts: DeadlineOptions) => {
    if (opts.ms <= 0) return;
    const retryAfterSeconds = Math.max(1, Math.ceil(opts.ms / 1000));
    const started = new WeakSet<FastifyRequest>();
    const start = (request: FastifyRequest, reply: FastifyReply) => {
      started.add(request);
      const timer = setTimeout(() => {
        if (reply.sent || reply.raw.headersSent) return;
        request.log.warn({ deadlineMs: opts.ms, url: request.url, method: request.method }, 'no answer within the deadline; answered 503');
        void reply.send(serviceUnavailable(`No answer within ${opts.ms} ms: a dependency is not responding; retry after Retry-After`, retryAfterSeconds));
      }, opts.ms);
      // 'close': the answer went out, or the client left; either way the deadline is moot.
      reply.raw.once('close', () => clearTimeout(timer));
    };
    // The deadline counts the server's time, not the client's: a request with a body starts it
    // once the body has arrived (its upload is bounded by HTTP_REQUEST_TIMEOUT_MS), any other
    // request at once.
    app.addHook('onRequest', (request, reply, done) => {
      const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
      if (!hasBody) start(request, reply);
      done();
    });
    app.addHook('preValidation', (request, reply, done) => {
      if (!started.has(request)) start(request, reply);
      done();
    });
  },
  { name: 'deadline' },
);
