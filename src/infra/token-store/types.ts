// Refresh-token store: opaque tokens kept only as SHA-256 hashes, grouped in families
// (one login = one family) so that reuse of a spent token revokes the whole family.

export interface TokenOwner {
  userId: string;
  familyId: string;
}

export type RotateResult =
  | { ok: true; owner: TokenOwner }
  | { ok: false; reason: 'unknown' | 'revoked' }
  | { ok: false; reason: 'reused'; owner: TokenOwner };

export interface RefreshTokenStore {
  readonly kind: 'redis' | 'memory';
  /** Stores a new token of a new or existing family. */
  issue(hash: string, owner: TokenOwner, ttlSeconds: number): Promise<void>;
  /**
   * Atomically spends oldHash and stores newHash in the same family. A spent token presented
   * again revokes its family and reports 'reused'.
   */
  rotate(oldHash: string, newHash: string, ttlSeconds: number): Promise<RotateResult>;
  /** Revokes the family the token belongs to; returns its owner, or null for an unknown token. */
  revokeFamily(hash: string, ttlSeconds: number): Promise<TokenOwner | null>;
  /** Revokes every token of the user, past and present (password change, deletion). */
  revokeUser(userId: string, ttlSeconds: number): Promise<void>;
  close(): Promise<void>;
}
