// In-process response cache for the embedded, single-instance mode. Bounded in bytes, not in
// entries: one user's large pages could otherwise fill the heap within any entry count. Least
// recently used entries go first once the entries' total size passes maxBytes, and an entry
// larger than maxEntryBytes is never kept (the response is served, just not cached).
import { bodyBytes, type CachedResponse, type Lookup, type ResponseCacheStore } from './types.js';

export interface MemoryCacheLimits {
  /** Total size of the entries held (see entrySize). */
  maxBytes: number;
  /** A response body larger than this (UTF-8 bytes) is not stored. */
  maxEntryBytes: number;
}

/** Map node, key and the two string headers: what an entry costs besides its strings. */
const ENTRY_OVERHEAD = 160;

/** V8 keeps a string in one byte per UTF-16 unit when every unit fits in Latin-1, else two. */
const heapBytes = (s: string) => (/[\u0100-\uffff]/.test(s) ? 2 : 1) * s.length;

/** What an entry occupies in the heap, counted generously: its key, body and ETag, and the overhead. */
export const entrySize = (storeKey: string, entry: CachedResponse) =>
  heapBytes(storeKey) + heapBytes(entry.body) + heapBytes(entry.etag) + ENTRY_OVERHEAD;

interface Held {
  entry: CachedResponse;
  expiresAt: number;
  size: number;
}

export class MemoryResponseCache implements ResponseCacheStore {
  readonly kind = 'memory';
  /** In least recently used order: a hit moves its entry to the end. */
  private readonly entries = new Map<string, Held>();
  private readonly generations = new Map<string, number>();
  private total = 0;

  constructor(
    private readonly limits: MemoryCacheLimits = { maxBytes: 32 * 1024 * 1024, maxEntryBytes: 256 * 1024 },
    private readonly now: () => number = Date.now,
  ) {}

  /** The entries' total size; never above limits.maxBytes. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  lookup(userId: string, key: string): Promise<Lookup | null> {
    const storeKey = `${userId}:${this.generations.get(userId) ?? 0}:${key}`;
    const found = this.entries.get(storeKey);
    if (!found) return Promise.resolve({ storeKey, entry: null });
    this.remove(storeKey, found);
    if (found.expiresAt <= this.now()) return Promise.resolve({ storeKey, entry: null });
    this.entries.set(storeKey, found); // most recently used now
    this.total += found.size;
    return Promise.resolve({ storeKey, entry: found.entry });
  }

  store(storeKey: string, entry: CachedResponse, ttlSeconds: number): Promise<boolean> {
    // A store under a generation that has since moved on is harmless: nobody reads that key, and
    // it is the least recently used entry the moment anything else is read or stored.
    const previous = this.entries.get(storeKey);
    if (previous) this.remove(storeKey, previous);
    const size = entrySize(storeKey, entry);
    if (bodyBytes(entry.body) > this.limits.maxEntryBytes || size > this.limits.maxBytes) return Promise.resolve(false);
    this.entries.set(storeKey, { entry, expiresAt: this.now() + ttlSeconds * 1000, size });
    this.total += size;
    for (const [key, held] of this.entries) {
      if (this.total <= this.limits.maxBytes) break;
      this.remove(key, held);
    }
    return Promise.resolve(true);
  }

  invalidateUser(userId: string): Promise<void> {
    this.generations.set(userId, (this.generations.get(userId) ?? 0) + 1);
    return Promise.resolve();
  }

  private remove(key: string, held: Held): void {
    this.entries.delete(key);
    this.total -= held.size;
  }
}
