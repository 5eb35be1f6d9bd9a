// Conditional GET and the response cache, for routes that opt in with config.cache. Entries are
// per user and per normalised request (route, path parameters, validated query with defaults).
// Concurrent misses of one key on this instance wait for a single database read.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { CachedResponse, ResponseCacheStore } from '../infra/cache/types.js';
import type { CacheStats } from '../observability/recorders.js';
import { ifNoneMatchHits } from './conditional.js';
import { addVary } from './vary.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Serve this GET from the response cache and answer If-None-Match with 304. */
    cache?: boolean;
  }
  interface FastifyRequest {
    cacheFlight?: Flight;
  }
  interface FastifyInstance {
    cacheStats: CacheStats;
  }
}

/** What the leader of a flight read: its entry, and whether the store kept it (a too-large one is not). */
interface Shared {
  entry: CachedResponse;
  cached: boolean;
}

interface Flight {
  storeKey: string;
  done(shared: Shared | null): void;
}

export interface ResponseCacheOptions {
  /** Undefined when caching is off: conditional GET still works. */
  store: ResponseCacheStore | undefined;
  ttlSeconds: number;
}

const hashEtag = (body: string) => `"${createHash('sha1').update(body).digest('base64url')}"`;

function sortedQuery(query: unknown): string {
  const q = (query ?? {}) as Record<string, unknown>;
  return Object.keys(q)
    .sort()
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(String(q[k]))}`)
    .join('&');
}

function cacheKey(request: FastifyRequest): string {
  const params = Object.entries((request.params ?? {}) as Record<string, string>)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join(',');
  return `${request.routeOptions.url ?? request.url}|${params}|${sortedQuery(request.query)}`;
}

function privateHeaders(reply: FastifyReply, etag: string, source: 'HIT' | 'MISS'): void {
  void reply.header('etag', etag).header('cache-control', 'private, no-cache').header('x-cache', source);
  addVary(reply, 'Authorization'); // added to, not replacing, the CORS plugin's Origin
}

function serveCached(request: FastifyRequest, reply: FastifyReply, entry: CachedResponse, source: 'HIT' | 'MISS' = 'HIT'): FastifyReply {
  privateHeaders(reply, entry.etag, source);
  if (ifNoneMatchHits(request.headers['if-none-match'], entry.etag)) return reply.code(304).send();
  return reply.code(200).type('application/json; charset=utf-8').send(entry.body);
}

export const responseCachePlugin = fp(
  (app: FastifyInstance, opts: ResponseCacheOptions) => {
    const { store, ttlSeconds } = opts;
    const inflight = new Map<string, Promise<Shared | null>>();
    const stats: CacheStats = { hits: 0, misses: 0 };
    app.decorate('cacheStats', stats);

    app.addHook('preHandler', async (request, reply) => {
      if (!request.routeOptions.config.cache || !store || !request.actor) return;
      const lookup = await store.lookup(request.actor.userId, cacheKey(request));
      if (lookup?.entry) {
        stats.hits++;
        return serveCached(request, reply, lookup.entry);
      }
      stats.misses++;
      if (!lookup) return; // cache unavailable: straight to the database
      const pending = inflight.get(lookup.storeKey);
      if (pending) {
        const shared = await pending;
        // The leader's answer, whether or not the store kept it (too large: MISS, and not cached).
        if (shared) return serveCached(request, reply, shared.entry, shared.cached ? 'HIT' : 'MISS');
        return; // the leader failed: read for ourselves
      }
      let done!: (shared: Shared | null) => void;
      inflight.set(lookup.storeKey, new Promise((resolve) => (done = resolve)));
      request.cacheFlight = { storeKey: lookup.storeKey, done };
    });

    app.addHook('onSend', async (request, reply, payload) => {
      if (!request.routeOptions.config.cache || reply.getHeader('x-cache') === 'HIT') return payload;
      const flight = request.cacheFlight;
      let entry: CachedResponse | null = null;
      let cached = false;
      if (reply.statusCode === 200 && typeof payload === 'string') {
        const etag = (reply.getHeader('etag') as string | undefined) ?? hashEtag(payload);
        entry = { body: payload, etag };
        privateHeaders(reply, etag, 'MISS');
        if (flight && store) cached = await store.store(flight.storeKey, entry, ttlSeconds);
      }
      if (flight) finish(request, flight, entry && { entry, cached });
      if (entry && ifNoneMatchHits(request.headers['if-none-match'], entry.etag)) {
        void reply.code(304);
        return '';
      }
      return payload;
    });

    // A request that ends without reaching onSend (aborted) must not leave waiters hanging.
    app.addHook('onResponse', (request, _reply, done) => {
      if (request.cacheFlight) finish(request, request.cacheFlight, null);
      done();
    });

    function finish(request: FastifyRequest, flight: Flight, shared: Shared | null): void {
      inflight.delete(flight.storeKey);
      flight.done(shared);
      request.cacheFlight = undefined;
    }
  },
  { name: 'response-cache', dependencies: ['auth'] },
);
