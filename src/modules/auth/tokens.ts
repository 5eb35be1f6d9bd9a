// Access tokens (JWT, verified locally by every instance) and opaque refresh tokens.
import { createHash, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { ACCESS_TOKEN_TYP, JwtAccessTokenVerifier } from '../../http/access-token.js';
import type { Actor } from '../../shared/actor.js';
import type { KeyRing } from './keys.js';

export interface TokenSettings {
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  /** Verified tokens remembered (so a client's next request skips the signature check); 0 = none. */
  verifiedCacheSize?: number | undefined;
  /** The clock, in ms (tests). */
  now?: (() => number) | undefined;
}

export class AccessTokens {
  private readonly verifier: JwtAccessTokenVerifier;

  constructor(
    private readonly keys: KeyRing,
    private readonly settings: TokenSettings,
  ) {
    this.verifier = new JwtAccessTokenVerifier(async (kid, alg) => {
      let k = keys.verification.get(kid);
      // A key another auth instance added to the shared store since this one last read it.
      if (!k && keys.reloadOnUnknownKid && (await keys.reloadOnUnknownKid())) k = keys.verification.get(kid);
      if (!k || k.alg !== alg) throw new Error('unknown key');
      return k.key;
    }, settings);
  }

  get ttlSeconds(): number {
    return this.settings.accessTtlSeconds;
  }

  sign(actor: Actor): Promise<string> {
    const { kid, alg, key } = this.keys.signing;
    const nowSeconds = Math.floor((this.settings.now ?? Date.now)() / 1000);
    return new SignJWT({ role: actor.role })
      .setProtectedHeader({ alg, kid, typ: ACCESS_TOKEN_TYP })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setSubject(actor.userId)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + this.settings.accessTtlSeconds)
      .sign(key);
  }

  verify(token: string): Promise<Actor> {
    return this.verifier.verify(token);
  }
}

export const newRefreshToken = () => randomBytes(32).toString('base64url');
export const hashRefreshToken = (token: string) => createHash('sha256').update(token).digest('base64url');
