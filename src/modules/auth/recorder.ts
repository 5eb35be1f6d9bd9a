// What authentication reports about itself (failures, refresh-token reuse). The auth hook and
// AuthService call this; the metrics work implements it with Prometheus counters, so neither
// module nor hook depends on a metrics library.

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
