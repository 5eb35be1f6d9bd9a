// Methods per path, read from the router itself, so it cannot drift from the routes. A wrong
// method on a known path is a 405 naming the path's methods in Allow (RFC 9110 §15.5.6), not a
// 404; OPTIONS on a known path is a 204 with Allow (and, through the CORS plugin, a preflight
// answer). Both are answered in onRequest, ahead of authentication and rate limiting: they run
// no handler and say nothing that /openapi.json does not, and a browser's preflight carries no
// token to authenticate or to count against.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../shared/errors.js';

/** The methods a concrete URL answers (HEAD wherever GET is), plus OPTIONS; empty for an unknown path. */
export function allowedMethods(app: FastifyInstance, url: string): string[] {
  const found = app.supportedMethods.filter((method) => method !== 'OPTIONS' && app.findRoute({ method, url }) !== null);
  return found.length === 0 ? [] : [...found, 'OPTIONS'].sort();
}

export const methodsPlugin = fp(
  (app: FastifyInstance) => {
    app.addHook('onRequest', async (request, reply) => {
      if (!request.is404) return;
      const allow = allowedMethods(app, request.url);
      if (allow.length === 0) return; // an unknown path: the not-found handler answers
      const path = request.url.split('?')[0];
      if (request.method === 'OPTIONS') return reply.code(204).header('allow', allow.join(', ')).send();
      throw new AppError(405, 'method-not-allowed', 'Method Not Allowed', `${request.method} is not allowed on ${path}; use ${allow.join(', ')}`, undefined, {
        allow: allow.join(', '),
      });
    });
  },
  { name: 'methods' },
);
