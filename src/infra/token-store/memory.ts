// In-process refresh-token store for the embedded, single-instance mode.
import type { RefreshTokenStore, RotateResult, TokenOwner } from './types.js';

interface Entry extends TokenOwner {
  gen: number;
  spent: boolean;
  expiresAt: number;
}

export class MemoryTokenStore implements RefreshTokenStore {
  readonly kind = 'memory';
  private readonly tokens = new Map<string, Entry>();
  private readonly revokedFamilies = new Map<string, number>();
  private readonly userGen = new Map<string, number>();
  private lastSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  issue(hash: string, owner: TokenOwner, ttlSeconds: number): Promise<void> {
    this.sweep();
    this.tokens.set(hash, { ...owner, gen: this.userGen.get(owner.userId) ?? 0, spent: false, expiresAt: this.now() + ttlSeconds * 1000 });
    return Promise.resolve();
  }

  rotate(oldHash: string, newHash: string, ttlSeconds: number): Promise<RotateResult> {
    const e = this.live(oldHash);
    if (!e) return Promise.resolve({ ok: false, reason: 'unknown' });
    const owner = { userId: e.userId, familyId: e.familyId };
    if (this.familyRevoked(e.familyId) || (this.userGen.get(e.userId) ?? 0) !== e.gen) {
      return Promise.resolve({ ok: false, reason: 'revoked' });
    }
    if (e.spent) {
      this.revokedFamilies.set(e.familyId, this.now() + ttlSeconds * 1000);
      return Promise.resolve({ ok: false, reason: 'reused', owner });
    }
    e.spent = true;
    this.tokens.set(newHash, { ...owner, gen: e.gen, spent: false, expiresAt: this.now() + ttlSeconds * 1000 });
    return Promise.resolve({ ok: true, owner });
  }

  revokeFamily(hash: string, ttlSeconds: number): Promise<TokenOwner | null> {
    const e = this.live(hash);
    if (!e) return Promise.resolve(null);
    this.revokedFamilies.set(e.familyId, this.now() + ttlSeconds * 1000);
    return Promise.resolve({ userId: e.userId, familyId: e.familyId });
  }

  revokeUser(userId: string): Promise<void> {
    this.userGen.set(userId, (this.userGen.get(userId) ?? 0) + 1);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.tokens.clear();
    return Promise.resolve();
  }

  private live(hash: string): Entry | undefined {
    const e = this.tokens.get(hash);
    if (e && e.expiresAt <= this.now()) {
      this.tokens.delete(hash);
      return undefined;
    }
    return e;
  }

  private familyRevoked(familyId: string): boolean {
    const until = this.revokedFamilies.get(familyId);
    return until !== undefined && until > this.now();
  }

  /** Drops expired entries at most once a minute, so memory tracks live tokens only. */
  private sweep(): void {
    const now = this.now();
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [k, e] of this.tokens) if (e.expiresAt <= now) this.tokens.delete(k);
    for (const [k, until] of this.revokedFamilies) if (until <= now) this.revokedFamilies.delete(k);
  }
}
