// Access tokens (JWT, verified locally by every instance) and opaque refresh tokens.
import { createHash, randomBytes } from 'node:crypto';
import { jwtVerify, SignJWT, type JWTHeaderParameters } from 'jose';
import { unauthorized } from '../../shared/errors.js';
import type { Actor } from '../../shared/actor.js';
import type { KeyRing } from './keys.js';

export interface TokenSettings {
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  /** Verified tokens remembered (so a client's next request skips the signature check); 0 = none. */
  verifiedCacheSize?: number;
  /** The clock, in ms (tests). */
  now?: () => number;
}

const TYP = 'at+jwt'; // RFC 9068: keeps other JWTs signed by the same key from passing as access tokens
const LEEWAY_SECONDS = 30;

/**
 * A signature check (Ed25519 or P-256) costs 50-150 µs of CPU, more than the rest of a cached
 * request. A token that verified once verifies again until it expires (the key ring does not
 * change while the process runs), so verified tokens are remembered, keyed by the whole token,
 * signature included, with their expiry checked on every use. Bounded: the oldest entry goes
 * first when it is full.
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

export class AccessTokens {
  private readonly verified: VerifiedTokens;
  private readonly now: () => number;

  constructor(
    private readonly keys: KeyRing,
    private readonly settings: TokenSettings,
  ) {
    this.verified = new VerifiedTokens(settings.verifiedCacheSize ?? 10_000);
    this.now = settings.now ?? Date.now;
  }

  get ttlSeconds(): number {
    return this.settings.accessTtlSeconds;
  }

  sign(actor: Actor): Promise<string> {
    const { kid, alg, key } = this.keys.signing;
    return new SignJWT({ role: actor.role })
      .setProtectedHeader({ alg, kid, typ: TYP })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setSubject(actor.userId)
      .setIssuedAt()
      .setExpirationTime(`${this.settings.accessTtlSeconds}s`)
      .sign(key);
  }

  async verify(token: string): Promise<Actor> {
    const nowMs = this.now();
    const known = this.verified.get(token, nowMs);
    if (known) return known;
    try {
      const { payload } = await jwtVerify(
        token,
        (header: JWTHeaderParameters) => {
          const k = header.kid ? this.keys.verification.get(header.kid) : undefined;
          if (!k || k.alg !== header.alg) throw new Error('unknown key');
          return k.key;
        },
        {
          issuer: this.settings.issuer,
          audience: this.settings.audience,
          algorithms: ['EdDSA', 'ES256'],
          typ: TYP,
          clockTolerance: LEEWAY_SECONDS,
          requiredClaims: ['sub', 'exp', 'iat'],
          currentDate: new Date(nowMs),
        },
      );
      const role = payload.role;
      if (typeof payload.sub !== 'string' || (role !== 'user' && role !== 'admin')) throw new Error('bad claims');
      const actor: Actor = Object.freeze({ userId: payload.sub, role });
      // Accepted until exp + leeway, exactly as jwtVerify would accept it.
      this.verified.set(token, actor, ((payload.exp ?? 0) + LEEWAY_SECONDS) * 1000);
      return actor;
    } catch {
      throw unauthorized('The access token is invalid or expired', 'invalid-token');
    }
  }
}

export const newRefreshToken = () => randomBytes(32).toString('base64url');
export const hashRefreshToken = (token: string) => createHash('sha256').update(token).digest('base64url');
