// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) on every authenticated POST and
// PATCH. A retry with the same key and the same request gets the first answer again, with
// `Idempotent-Replayed: true`, and nothing runs twice.
//
// - Keys are scoped per user (the access token's subject) and kept IDEMPOTENCY_TTL_SECONDS.
// - The request is fingerprinted in preValidation (method, path, and a SHA-256 of the body as
//   sent, in canonical JSON: before validation fills in defaults) and the key is claimed in
//   preHandler, once the request has passed authentication, rate limits and validation: so a
//   400 or 429 never touches the key, and the corrected retry runs.
// - Same key, another fingerprint: 422. Same key while its first request runs: 409 with
//   Retry-After. A 2xx and the 4xx that a retry would get again (404, 409, 412, 422) are stored;
//   400, 401, 403 and 429 are not, and a 5xx releases the claim (the retry may run again).
// - The public auth routes ignore the header: there is no user to scope the key to, and scoping by
//   client address would replay one client's fresh tokens to another behind the same NAT.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { Claim, IdempotencyStore, StoredResponse } from '../infra/idempotency/types.js';
import { canonicalJson } from '../shared/canonical-json.js';
import { uuidv7 } from '../shared/ids.js';
import { AppError, serviceUnavailable } from '../shared/errors.js';
import { authLevelOf } from './auth.js';
import { problem, problems } from './responses.js';

export const REPLAYED_HEADER = 'idempotent-replayed';
const KEY_HEADER = 'idempotency-key';

/** What a 409 tells the client to wait: the first request usually answers within it. */
const IN_FLIGHT_RETRY_AFTER_SECONDS = 1;
/** Headers a replay repeats; the rest (request id, rate limits, security headers) are the replay's own. */
const REPLAYED_HEADERS = ['content-type', 'location', 'etag'];

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the routes that take Idempotency-Key (see honours). */
    idempotency?: boolean;
  }
  interface FastifyRequest {
    idempotency?: { key: string; fingerprint: string; claim?: Claim };
  }
}

export interface IdempotencyOptions {
  store: IdempotencyStore;
  ttlSeconds: number;
  /**
   * How long a claim holds a key while its request runs (IDEMPOTENCY_LEASE_MS): a key whose
   * request died with its process (no answer stored, no release) is taken over after it. A create
   * run again under the takeover finds the row of the first run by its id (resourceIdOf), so a
   * short lease never makes a second task.
   */
  leaseMs: number;
}

const KEY_SCHEMA = {
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[\\x21-\\x7E]+$',
  description:
    'Makes the request safe to retry (draft-ietf-httpapi-idempotency-key-header): 1-255 visible ASCII characters, e.g. a UUID, unique per request and kept by the server for 24 h (IDEMPOTENCY_TTL_SECONDS) per user. ' +
    'The same key with the same method, path and body answers the first response again (status, body, Location, ETag) with `Idempotent-Replayed: true`; with another request: 422; while the first is still running: 409 with Retry-After. ' +
    'A 400, 429 or 5xx answer is not kept (the key may be used again). If the key store is unavailable: 503 with Retry-After.',
};

const REPLAYED_SCHEMA = { type: 'string', enum: ['true'], description: 'Present on a replayed answer to a repeated Idempotency-Key' };

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');

/** The store key of a client's key: scoped to the user, hashed (any 255 characters make a short, safe key). */
export const scopedKey = (userId: string, key: string) => `${userId}:${sha256(key)}`;

/** What must match for a retry to be the same request: method, path as sent, and the body in canonical JSON. */
export const fingerprintOf = (method: string, url: string, body: unknown) => sha256(`${method} ${url}\n${canonicalJson(body)}`);

/**
 * The id of what this request creates, when it holds an idempotency claim: the same for every
 * run of the same key (the first claim's time and the key), so that a run taking over from one
 * that died after its commit meets the row it made instead of making a second one.
 */
export function resourceIdOf(request: FastifyRequest): string | undefined {
  const claim = request.idempotency?.claim;
  return claim ? idOfClaim(claim) : undefined;
}

/** A UUIDv7 at the claim's seed, its other bits from the (scoped) key. */
export const idOfClaim = (claim: Claim) => uuidv7(claim.seed, createHash('sha256').update(claim.key).digest());

/** Whether a route takes Idempotency-Key: every authenticated POST and PATCH under /v1. */
function honours(route: RouteOptions): boolean {
  const methods = [route.method].flat();
  return route.url.startsWith('/v1/') && authLevelOf(route.config) !== 'public' && methods.some((m) => m === 'POST' || m === 'PATCH');
}

/** Only what the same request would get again is kept; a retry of anything else runs again. */
const kept = (status: number) => status < 500 && ![400, 401, 403, 429].includes(status);

/** Documents the header, the replay header on 2xx answers, and the 409, 422 and 503 answers. */
function document(route: RouteOptions): void {
  const schema = route.schema ?? {};
  const headers = (schema.headers ?? { type: 'object' }) as { properties?: Record<string, unknown> };
  const response = { ...(schema.response as Record<string, Record<string, unknown>> | undefined) };
  for (const [status, body] of Object.entries(response)) {
    if (/^2\d\d$/.test(status)) response[status] = { ...body, headers: { ...(body.headers as object | undefined), 'Idempotent-Replayed': REPLAYED_SCHEMA } };
  }
  const inFlight = 'the first request with this Idempotency-Key is still running: retry after Retry-After';
  const added: Record<string, Record<string, unknown>> = {
    ...problems(400, 503),
    409: problem(`Conflict: ${inFlight}`),
    422: problem('This Idempotency-Key was used for another request (method, path or body): use a new key'),
  };
  for (const [status, answer] of Object.entries(added)) {
    const existing = response[status];
    if (!existing) response[status] = answer;
    else if (status === '409') response[status] = { ...existing, description: `${String(existing.description)}; or ${inFlight}` };
  }
  route.schema = { ...schema, headers: { ...headers, type: 'object', properties: { ...headers.properties, [KEY_HEADER]: KEY_SCHEMA } }, response };
}

function replay(request: FastifyRequest, reply: FastifyReply, stored: StoredResponse): FastifyReply {
  void reply.code(stored.status).headers(stored.headers).header(REPLAYED_HEADER, 'true');
  if (stored.status === 204) return reply.send();
  let body = stored.body;
  // A problem names the request it answers; the replay is another request with its own id.
  if (stored.headers['content-type']?.startsWith('application/problem+json')) {
    try {
      body = JSON.stringify({ ...(JSON.parse(body) as object), requestId: request.id });
    } catch {
      // stored by this code, so always JSON; if not, replay it as it was
    }
  }
  return reply.send(body);
}

export const idempotencyPlugin = fp(
  (app: FastifyInstance, opts: IdempotencyOptions) => {
    const { store, ttlSeconds, leaseMs } = opts;

    app.addHook('onRoute', (route) => {
      if (!honours(route)) return;
      document(route);
      route.config = { ...route.config, idempotency: true };
    });

    // The body as sent: validation, which runs next, fills in defaults.
    app.addHook('preValidation', async (request) => {
      const raw = request.headers[KEY_HEADER];
      if (raw === undefined || !request.actor || !request.routeOptions.config.idempotency) return;
      // A malformed key is refused by the route's header schema, which runs next (400 naming the header).
      request.idempotency = { key: scopedKey(request.actor.userId, String(raw)), fingerprint: fingerprintOf(request.method, request.url, request.body) };
    });

    app.addHook('preHandler', async (request, reply) => {
      const state = request.idempotency;
      if (!state) return;
      let found;
      try {
        found = await store.claim(state.key, state.fingerprint, leaseMs, ttlSeconds);
      } catch (err) {
        // A write that asked for at-most-once must not run unprotected: a retry after a lost
        // answer would do it twice, the very thing the key is for. Refuse, as the token store
        // does, and let the client retry once the store is back; requests without a key run on.
        request.log.warn({ err: (err as Error).message }, 'idempotency store unavailable; request with Idempotency-Key refused');
        throw serviceUnavailable('Idempotency keys cannot be checked right now; retry later');
      }
      if (found.state === 'claimed') {
        state.claim = found.claim;
        return;
      }
      if (found.fingerprint !== state.fingerprint) {
        throw new AppError(422, 'idempotency-key-reused', 'Unprocessable Content', 'This Idempotency-Key was used for another request (method, path or body); use a new key for a new request');
      }
      if (found.state === 'in-flight') {
        throw new AppError(409, 'idempotency-key-in-use', 'Conflict', 'A request with this Idempotency-Key is still being processed; retry after Retry-After', undefined, {
          'retry-after': String(IN_FLIGHT_RETRY_AFTER_SECONDS),
        });
      }
      return replay(request, reply, found.response);
    });

    // The answer is stored before it leaves, so a retry that follows it at once replays it.
    app.addHook('onSend', async (request, reply, payload) => {
      const claim = request.idempotency?.claim;
      if (!claim) return payload;
      request.idempotency!.claim = undefined;
      const status = reply.statusCode;
      try {
        if (kept(status) && (typeof payload === 'string' || payload === null || payload === undefined || status === 204)) {
          const headers: Record<string, string> = {};
          for (const name of REPLAYED_HEADERS) {
            const value = reply.getHeader(name);
            if (value !== undefined) headers[name] = String(value);
          }
          const body = status === 204 || typeof payload !== 'string' ? '' : payload;
          const stored = await store.complete(claim, { status, headers, body }, ttlSeconds);
          // Only when the request outlived its lease and a retry took the key over.
          if (!stored) request.log.warn({ status }, 'idempotency claim lapsed before the answer; answer not kept');
        } else {
          await store.release(claim);
        }
      } catch (err) {
        // The request has run and its answer goes out; the claim stays until its lease ends, so a
        // retry within it gets 409 rather than running again.
        request.log.warn({ err: (err as Error).message, status }, 'idempotency store unavailable; answer not kept');
      }
      return payload;
    });
  },
  { name: 'idempotency', dependencies: ['auth'] },
);
