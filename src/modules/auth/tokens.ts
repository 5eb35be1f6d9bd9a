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
}

const TYP = 'at+jwt'; // RFC 9068: keeps other JWTs signed by the same key from passing as access tokens
const LEEWAY_SECONDS = 30;

export class AccessTokens {
  constructor(
    private readonly keys: KeyRing,
    private readonly settings: TokenSettings,
  ) {}

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
        },
      );
      const role = payload.role;
      if (typeof payload.sub !== 'string' || (role !== 'user' && role !== 'admin')) throw new Error('bad claims');
      return { userId: payload.sub, role };
    } catch {
      throw unauthorized('The access token is invalid or expired', 'invalid-token');
    }
  }
}

export const newRefreshToken = () => randomBytes(32).toString('base64url');
export const hashRefreshToken = (token: string) => createHash('sha256').update(token).digest('base64url');
