// Access-token verification, shared by the auth module (keys from its own key ring) and by
// processes without it (keys from the auth service's JWKS, src/http/remote-jwks.ts): one check of
// typ, iss, aud, exp and claims, whichever keys are behind it.
import type { KeyObject } from 'node:crypto';
import { jwtVerify, type JWTHeaderParameters } from 'jose';
import type { Actor } from '../shared/actor.js';
import { AppError, unauthorized } from '../shared/errors.js';
import type { AccessTokenVerifier } from './auth.js';

export const ACCESS_TOKEN_TYP = 'at+jwt'; // RFC 9068: keeps other JWTs signed by the same key from passing as access tokens
export const ACCESS_TOKEN_LEEWAY_SECONDS = 30;
export const ACCESS_TOKEN_ALGS = ['EdDSA', 'ES256'] as const;

/**
 * The public key for a token's `kid` and `alg`. Throws an Error when there is none (401), or an
 * AppError to answer instead (a 503 when the keys cannot be fetched).
 */
export type KeyResolver = (kid: string, alg: string) => KeyObject | Promise<KeyObject>;

export interface VerifySettings {
  issuer: string;
  audience: string;
  /** Verified tokens remembered (so a client's next request skips the signature check); 0 = none. */
  verifiedCacheSize?: number | undefined;
  /** The clock, in ms (tests). */
  now?: (() => number) | undefined;
}

/**
 * A signature check (Ed25519 or P-256) costs 50-150 µs of CPU, more than the rest of a cached
 * request. A token that verified once verifies again until it expires (a key leaves the key set
 * only after every token it signed has expired), so verified tokens are remembered, keyed by the
 * whole token, signature included, with their expiry checked on every use. Bounded: the oldest
 * entry goes first when it is full.
 */
class VerifiedTokens {
  private readonly entries = new Map<string, { actor: Actor; expiresAtMs: number }>();
  constructor(private readonly max: number) {}

  get(token: string, nowMs: number): Actor | undefined {
    const e = this.entries.get(token);
    if (!e) return undefined;
    if (nowMs >= e.expiresAtMs) {
      this.entries.delete(token);
      return undefined;
    }
    return e.actor;
  }

  set(token: string, actor: Actor, expiresAtMs: number): void {
    if (this.max <= 0) return;
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(token, { actor, expiresAtMs });
  }
}

export class JwtAccessTokenVerifier implements AccessTokenVerifier {
  private readonly verified: VerifiedTokens;
  private readonly now: () => number;

  constructor(
    private readonly resolve: KeyResolver,
    private readonly settings: VerifySettings,
  ) {
    this.verified = new VerifiedTokens(settings.verifiedCacheSize ?? 10_000);
    this.now = settings.now ?? Date.now;
  }

  async verify(token: string): Promise<Actor> {
    const nowMs = this.now();
    const known = this.verified.get(token, nowMs);
    if (known) return known;
    try {
      const { payload } = await jwtVerify(
        token,
        (header: JWTHeaderParameters) => {
          if (!header.kid || !(ACCESS_TOKEN_ALGS as readonly string[]).includes(header.alg)) throw new Error('unknown key');
          return this.resolve(header.kid, header.alg);
        },
        {
          issuer: this.settings.issuer,
          audience: this.settings.audience,
          algorithms: [...ACCESS_TOKEN_ALGS],
          typ: ACCESS_TOKEN_TYP,
          clockTolerance: ACCESS_TOKEN_LEEWAY_SECONDS,
          requiredClaims: ['sub', 'exp', 'iat'],
          currentDate: new Date(nowMs),
        },
      );
      const role = payload.role;
      if (typeof payload.sub !== 'string' || (role !== 'user' && role !== 'admin')) throw new Error('bad claims');
      const actor: Actor = Object.freeze({ userId: payload.sub, role });
      // Accepted until exp + leeway, exactly as jwtVerify would accept it.
      this.verified.set(token, actor, ((payload.exp ?? 0) + ACCESS_TOKEN_LEEWAY_SECONDS) * 1000);
      return actor;
    } catch (err) {
      if (err instanceof AppError) throw err; // the resolver's own answer (503: keys unavailable)
      throw unauthorized('The access token is invalid or expired', 'invalid-token');
    }
  }
}
