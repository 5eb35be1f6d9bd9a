// Rate limiting at the edge (rate-limiter-flexible). Counters live in Redis, so every instance
// shares one quota; each Redis limiter carries an in-memory insurance limiter that answers at once
// while Redis is not ready (a per-instance quota, never an error or a wait). Embedded (no Redis):
// in-memory limiters only.
//
// - 'default' on every request except health and docs: keyed by the user when the auth
//   hook (which runs before this one) authenticated the request, else by the client IP
//   (request.ip, which trusts X-Forwarded-For only from TRUST_PROXY).
// - Routes add policies by name in config.rateLimit; those are consumed in preValidation, once
//   the body is parsed (before it is validated, so malformed attempts count too).
// - Headers (draft-ietf-httpapi-ratelimit-headers, structured fields) list every policy applied
//   to the request: `RateLimit-Policy: "default";q=10;w=1` and `RateLimit: "default";r=9;t=1`.
//   Over a limit: 429 problem+json with Retry-After.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { RATE_LIMIT_POLICY_NAMES, type Config, type RateLimitPolicy, type RateLimitPolicyName } from '../config.js';
import { normaliseEmail } from '../shared/email.js';
import { tooManyRequests } from '../shared/errors.js';
import type { RateLimitStats } from '../observability/recorders.js';
import { problems } from './responses.js';

/** Policies a route can add to 'default'. */
export type RoutePolicyName = Exclude<RateLimitPolicyName, 'default'>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Policies this route adds to 'default', in order; `false` exempts the route from limiting. */
    rateLimit?: RoutePolicyName[] | false;
  }
  interface FastifyInstance {
    rateLimitStats: RateLimitStats;
  }
}

/** Never limited: probes and the API docs (/metrics has a port of its own). Matched on the route pattern. */
const EXEMPT = new Set(['/health', '/health/live', '/openapi.json', '/docs']);
const isExempt = (url: string | undefined) => url !== undefined && (EXEMPT.has(url) || url.startsWith('/docs/'));

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

function bodyField(request: FastifyRequest, name: string): unknown {
  const body = request.body;
  return typeof body === 'object' && body !== null && Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
}

/** The login's account, hashed: no addresses in Redis key names. */
function accountOf(request: FastifyRequest): string | undefined {
  const email = bodyField(request, 'email');
  return typeof email === 'string' ? `email:${sha256(normaliseEmail(email))}` : undefined;
}

/** Each policy's key for a request, or undefined when the policy does not apply to it. */
const KEYS: Record<RateLimitPolicyName, (request: FastifyRequest) => string | undefined> = {
  default: (r) => (r.actor ? `user:${r.actor.userId}` : `ip:${r.ip}`),
  'auth-ip': (r) => `ip:${r.ip}`,
  'login-account-ip': (r) => {
    const account = accountOf(r);
    return account === undefined ? undefined : `${account}:ip:${r.ip}`;
  },
  'login-account': accountOf,
  'password-change': (r) => (r.actor && bodyField(r, 'password') !== undefined ? `user:${r.actor.userId}` : undefined),
};

/**
 * Policies that count failures only. 'reset': a successful answer clears the key (consecutive
 * failures from that source). 'refund': it gives back the point it took (failures in the window).
 * The point is taken before the attempt, so concurrent attempts cannot all slip past the limit.
 */
const ON_SUCCESS: Partial<Record<RateLimitPolicyName, 'reset' | 'refund'>> = {
  'login-account-ip': 'reset',
  'login-account': 'refund',
};

export interface RateLimitOptions {
  config: Config['rateLimit'];
  /** The shared connection (its keyPrefix already applies); undefined: in-memory limiters. */
  redis?: Redis | undefined;
}

function createLimiter(name: RateLimitPolicyName, policy: RateLimitPolicy, redis: Redis | undefined): RateLimiterAbstract {
  // The client's keyPrefix ('task-api:') comes first, so keys are 'task-api:rl:<policy>:<key>'.
  const opts = { keyPrefix: `rl:${name}`, points: policy.points, duration: policy.duration, blockDuration: policy.blockDuration };
  if (!redis) return new RateLimiterMemory(opts);
  return new RateLimiterRedis({
    ...opts,
    storeClient: redis,
    // Not 'ready' (connecting, reconnecting): use the insurance limiter now rather than queue.
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory(opts),
  });
}

interface Applied {
  name: RateLimitPolicyName;
  key: string;
  res: RateLimiterRes;
}

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

export const rateLimitPlugin = fp(
  (app: FastifyInstance, opts: RateLimitOptions) => {
    const stats: RateLimitStats = {
      rejected: Object.fromEntries(RATE_LIMIT_POLICY_NAMES.map((n) => [n, 0])) as Record<RateLimitPolicyName, number>,
    };
    app.decorate('rateLimitStats', stats);
    if (!opts.config.enabled) return;

    const { policies } = opts.config;
    const limiters = Object.fromEntries(
      RATE_LIMIT_POLICY_NAMES.map((n) => [n, createLimiter(n, policies[n], opts.redis)]),
    ) as Record<RateLimitPolicyName, RateLimiterAbstract>;
    const applied = new WeakMap<FastifyRequest, Applied[]>();

    function setHeaders(reply: FastifyReply, list: Applied[]): void {
      const policy = list.map((a) => `"${a.name}";q=${policies[a.name].points};w=${policies[a.name].duration}`);
      const state = list.map((a) => `"${a.name}";r=${a.res.remainingPoints};t=${seconds(a.res.msBeforeNext)}`);
      void reply.header('ratelimit-policy', policy.join(', ')).header('ratelimit', state.join(', '));
    }

    async function consume(request: FastifyRequest, reply: FastifyReply, name: RateLimitPolicyName): Promise<void> {
      const key = KEYS[name](request);
      if (key === undefined) return;
      let res: RateLimiterRes;
      let refused = false;
      try {
        res = await limiters[name].consume(key);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) {
          // Both the store and the insurance limiter failed: let the request through.
          request.log.warn({ err, policy: name }, 'rate limiter failed; request not limited');
          return;
        }
        res = err;
        refused = true;
      }
      const list = applied.get(request) ?? [];
      list.push({ name, key, res });
      applied.set(request, list);
      setHeaders(reply, list);
      if (refused) {
        stats.rejected[name]++;
        const retryAfter = Math.max(1, seconds(res.msBeforeNext));
        throw tooManyRequests(`Rate limit "${name}" exceeded; retry in ${retryAfter} s`, retryAfter);
      }
    }

    // Limited routes document their 429 answer.
    app.addHook('onRoute', (route) => {
      const response = route.schema?.response as Record<string, unknown> | undefined;
      if (route.config?.rateLimit === false || isExempt(route.url) || !response || '429' in response) return;
      route.schema = { ...route.schema, response: { ...response, ...problems(429) } };
    });

    // Registered after the auth plugin, so request.actor is already set for authenticated calls.
    app.addHook('onRequest', async (request, reply) => {
      if (request.routeOptions.config?.rateLimit === false || isExempt(request.routeOptions.url)) return;
      await consume(request, reply, 'default');
    });

    app.addHook('preValidation', async (request, reply) => {
      const names = request.routeOptions.config?.rateLimit;
      if (!Array.isArray(names)) return;
      for (const name of names) await consume(request, reply, name);
    });

    // Before the answer leaves, so that the client's next request sees the reset.
    app.addHook('onSend', async (request, reply) => {
      if (reply.statusCode >= 400) return;
      for (const a of applied.get(request) ?? []) {
        const action = ON_SUCCESS[a.name];
        if (action === undefined) continue;
        const limiter = limiters[a.name];
        await (action === 'reset' ? limiter.delete(a.key) : limiter.reward(a.key, 1)).catch((err: unknown) =>
          request.log.warn({ err, policy: a.name }, 'rate limit reset failed'),
        );
      }
    });
  },
  { name: 'rate-limit', dependencies: ['auth'] },
);
