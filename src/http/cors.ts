// CORS, off unless CORS_ORIGINS lists origins (exact matches: scheme, host and port). Off, no
// response carries an Access-Control-* header. On, a request from a listed origin gets that origin
// back in Access-Control-Allow-Origin and may read the headers clients need (ETag, Location, the
// rate-limit fields, Retry-After, X-Request-Id, Idempotent-Replayed); other origins get nothing,
// so browsers withhold the answer. Credentials are never allowed: the API takes bearer tokens,
// not cookies. Every response says Vary: Origin, since its CORS headers depend on it.
//
// A preflight (OPTIONS with Access-Control-Request-Method) is answered 204 by the methods plugin,
// before authentication and rate limiting; this adds the allowed methods of the path, the
// request headers the API reads, and how long a browser may reuse the answer.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { allowedMethods } from './methods.js';
import { addVary } from './vary.js';

const EXPOSED = 'ETag, Idempotent-Replayed, Location, RateLimit, RateLimit-Policy, Retry-After, X-Request-Id';
const REQUEST_HEADERS = 'Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, X-Request-Id';
const PREFLIGHT_MAX_AGE_SECONDS = '600';

export const corsPlugin = fp(
  (app: FastifyInstance, opts: { origins: readonly string[] }) => {
    if (opts.origins.length === 0) return;
    const allowed = new Set(opts.origins);
    app.addHook('onRequest', (request, reply, done) => {
      addVary(reply, 'Origin');
      const origin = request.headers.origin;
      if (origin === undefined || !allowed.has(origin)) return done();
      void reply.header('access-control-allow-origin', origin);
      if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
        const methods = allowedMethods(app, request.url).filter((m) => m !== 'OPTIONS');
        if (methods.length > 0) void reply.header('access-control-allow-methods', methods.join(', '));
        void reply.header('access-control-allow-headers', REQUEST_HEADERS).header('access-control-max-age', PREFLIGHT_MAX_AGE_SECONDS);
      } else {
        void reply.header('access-control-expose-headers', EXPOSED);
      }
      done();
    });
  },
  { name: 'cors' },
);
