// What the platform and the modules report about themselves, as small interfaces. The code that
// does the work (auth hook, AuthService, relay, buses, cache and rate-limit plugins) calls these;
// Metrics (metrics.ts) implements them with Prometheus counters. Nothing that records depends on
// a metrics library, and metrics depends on nothing that records.
import type { RateLimitPolicyName } from '../config.js';

/** Why a request was refused authentication: a small bounded set (metric label values). */
export const AUTH_FAILURE_REASONS = [
  /** No Bearer access token on a route that needs one (or a malformed Authorization header). */
  'missing_token',
  /** An access token that does not verify: bad signature, expired, wrong issuer/audience/typ. */
  'invalid_token',
  /** A valid access token without the role the route requires (admin routes). */
  'forbidden',
  /** Login with an unknown email or a wrong password. */
  'invalid_credentials',
  /** Refresh with a token that is unknown, expired, revoked or already spent (reuse). */
  'invalid_refresh_token',
] as const;

export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

export interface AuthRecorder {
  failure(reason: AuthFailureReason): void;
  /** A spent refresh token was presented again and its family revoked. */
  refreshTokenReuse(): void;
}

/** Records nothing: the default when metrics are off. */
export const noAuthRecorder: AuthRecorder = {
  failure: () => undefined,
  refreshTokenReuse: () => undefined,
};

/** What the outbox relay reports. */
export interface RelayRecorder {
  published(type: string, count: number): void;
  publishFailure(): void;
}

/** What consumers do with deliveries. `consumer` is the subscription name: a bounded label. */
export interface ConsumeRecorder {
  /** Registered (counters start at 0). */
  subscribed?(consumer: string): void;
  /** The handler succeeded (RabbitMQ: acked). */
  consumed(consumer: string): void;
  /** The handler failed and the event will be delivered again. */
  failed(consumer: string): void;
  /** Given up: poison, not JSON, or failed past the delivery limit (the dead-letter queue). */
  deadLettered(consumer: string): void;
}

/** Response cache lookups, counted in process and read at scrape time. */
export interface CacheStats {
  hits: number;
  misses: number;
}

/** Requests answered 429, by the policy that refused them, read at scrape time. */
export interface RateLimitStats {
  rejected: Record<RateLimitPolicyName, number>;
}
