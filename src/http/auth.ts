// Authentication at the edge: every route under /v1 declares config.auth ('public', 'user' or
// 'admin'; 'user' when silent). The access token is verified locally with the public keys.
// Two steps: onRequest authenticates (sets request.actor, or remembers why not); preParsing,
// which runs after every onRequest hook, refuses. In between the rate limiter counts the
// request, so a flood of bad tokens is limited by IP like any other anonymous traffic.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { noAuthRecorder, type AuthRecorder } from '../observability/recorders.js';
import type { Actor } from '../shared/actor.js';
import { forbidden, unauthorized, type AppError } from '../shared/errors.js';

export type AuthLevel = 'public' | 'user' | 'admin';

/** Checks an access token locally and says whose it is; throws a 401 AppError when it does not verify. */
export interface AccessTokenVerifier {
  verify(token: string): Promise<Actor>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthLevel;
  }
  interface FastifyRequest {
    actor: Actor | null;
    /** Why the request may not proceed, decided in onRequest and thrown in preParsing. */
    authFailure: AppError | null;
  }
}

/** The authenticated caller of a route whose auth level is 'user' or 'admin'. */
export function actorOf(request: FastifyRequest): Actor {
  if (!request.actor) throw unauthorized();
  return request.actor;
}

export const authLevelOf = (config: { auth?: AuthLevel } | undefined): AuthLevel => config?.auth ?? 'user';

export const authPlugin = fp(
  (app: FastifyInstance, opts: { tokens: AccessTokenVerifier; recorder?: AuthRecorder | undefined }) => {
    const recorder = opts.recorder ?? noAuthRecorder;
    app.decorateRequest('actor', null);
    app.addHook('onRoute', (route) => {
      const level = authLevelOf(route.config);
      if (level === 'public' || !route.url.startsWith('/v1/')) return;
      route.schema = { ...route.schema, security: [{ bearerAuth: [] }] };
    });
    app.decorateRequest('authFailure', null);
    app.addHook('onRequest', async (request) => {
      // The matched route's pattern, not the raw URL, which may hide '/v1/' in %-escapes ('/%761/...').
      if (!(request.routeOptions.url ?? request.url).startsWith('/v1/')) return;
      const level = authLevelOf(request.routeOptions.config);
      if (level === 'public') return;
      const header = request.headers.authorization;
      const match = header ? /^Bearer ([A-Za-z0-9_.-]+)$/i.exec(header) : null;
      if (!match) {
        recorder.failure('missing_token');
        request.authFailure = unauthorized('A Bearer access token is required');
        return;
      }
      try {
        request.actor = await opts.tokens.verify(match[1]!);
      } catch (err) {
        recorder.failure('invalid_token');
        request.authFailure = err as AppError;
        return;
      }
      if (level === 'admin' && request.actor.role !== 'admin') {
        recorder.failure('forbidden');
        request.authFailure = forbidden('Admin role required');
      }
    });
    app.addHook('preParsing', (request, _reply, _payload, done) => {
      done(request.authFailure ?? undefined);
    });
  },
  { name: 'auth' },
);
