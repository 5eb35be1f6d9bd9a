// In-process response cache for the embedded, single-instance mode. Bounded: the oldest entries
// go first once it holds maxEntries.
import type { CachedResponse, Lookup, ResponseCacheStore } from './types.js';

export class MemoryResponseCache implements ResponseCacheStore {
  readonly kind = 'memory';
  private readonly entries = new Map<string, { entry: CachedResponse; expiresAt: number }>();
  private readonly generations = new Map<string, number>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  lookup(userId: string, key: string): Promise<Lookup | null> {
    const storeKey = `${userId}:${this.generations.get(userId) ?? 0}:${key}`;
    const found = this.entries.get(storeKey);
    if (found && found.expiresAt <= this.now()) this.entries.delete(storeKey);
    const live = found && found.expiresAt > this.now() ? found.entry : null;
    return Promise.resolve({ storeKey, entry: live });
  }

  store(storeKey: string, entry: CachedResponse, ttlSeconds: number): Promise<void> {
    // A store under a generation that has since moved on is harmless: nobody reads that key.
    this.entries.delete(storeKey);
    this.entries.set(storeKey, { entry, expiresAt: this.now() + ttlSeconds * 1000 });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return Promise.resolve();
  }

  invalidateUser(userId: string): Promise<void> {
    this.generations.set(userId, (this.generations.get(userId) ?? 0) + 1);
    return Promise.resolve();
  }
}
