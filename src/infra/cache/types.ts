// Response cache port. Entries are grouped per user under a generation: a write bumps the
// user's generation, which makes every older entry of that user unreachable at once (O(1),
// atomic, no key scanning). An epoch shared by all users is bumped when an instance may have
// missed an invalidation (Redis unreachable during a write), which retires every entry.

export interface CachedResponse {
  body: string;
  etag: string;
}

/** Where a lookup stands: the generation read before the database is queried, and any entry. */
export interface Lookup {
  /** Key to store the response under; it names the generation read here. */
  storeKey: string;
  entry: CachedResponse | null;
}

export interface ResponseCacheStore {
  readonly kind: 'redis' | 'memory';
  /** Null when the cache cannot be used right now (unreachable, or possibly stale). */
  lookup(userId: string, key: string): Promise<Lookup | null>;
  /**
   * Keeps the entry; false when it was not kept (larger than the store's per-entry cap, or the
   * store is unavailable). Never throws.
   */
  store(storeKey: string, entry: CachedResponse, ttlSeconds: number): Promise<boolean>;
  /** Makes every entry of the user unreachable. Never throws: a failure is remembered and repaired. */
  invalidateUser(userId: string): Promise<void>;
}

/** A body's size as sent: the measure of the per-entry cap (CACHE_MAX_ENTRY_BYTES) in every store. */
export const bodyBytes = (body: string) => Buffer.byteLength(body, 'utf8');
