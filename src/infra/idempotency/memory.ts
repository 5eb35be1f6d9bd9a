// In-process idempotency store for the embedded, single-instance mode. Bounded in bytes: stored
// responses are kept at most `maxBytes` in all (a task's answer can be tens of KiB, so an entry
// count alone would not bound the heap); past that the oldest answered keys go first, which is
// also the order they would expire in. In-flight claims are never evicted (that would let a
// retry run while the first request still does): they are small and lapse with their lease.
import { randomBytes } from 'node:crypto';
import { decodeValue, doneValue, inFlightValue, type Claim, type ClaimResult, type IdempotencyStore, type StoredResponse } from './types.js';

/** Map node and key bookkeeping besides the two strings. */
const ENTRY_OVERHEAD = 160;
const sizeOf = (key: string, value: string) => (key.length + value.length) * 2 + ENTRY_OVERHEAD;
/** Seeds kept at most (about 100 bytes each). */
const MAX_SEEDS = 100_000;

interface Held {
  value: string;
  expiresAt: number;
  size: number;
  done: boolean;
}

export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly kind = 'memory';
  /** In insertion order: oldest first. */
  private readonly entries = new Map<string, Held>();
  /** Each key's seed (Claim.seed) and when it expires: it outlives a lapsed claim. */
  private readonly seeds = new Map<string, { seed: number; expiresAt: number }>();
  private total = 0;

  constructor(
    private readonly maxBytes = 16 * 1024 * 1024,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes held by the entries (see sizeOf). */
  get bytes(): number {
    return this.total;
  }

  claim(key: string, fingerprint: string, leaseMs: number, ttlSeconds: number): Promise<ClaimResult> {
    const held = this.live(key);
    if (held) return Promise.resolve(decodeValue(held.value));
    const now = this.now();
    let seeded = this.seeds.get(key);
    if (!seeded || seeded.expiresAt <= now) {
      seeded = { seed: now, expiresAt: now + ttlSeconds * 1000 };
      this.seeds.delete(key);
      this.seeds.set(key, seeded);
      // Bounded like the answers: past the cap the oldest seeds go (their keys then name a
      // takeover's creation anew, as after the TTL).
      if (this.seeds.size > MAX_SEEDS) this.seeds.delete(this.seeds.keys().next().value!);
    }
    const claim: Claim = { key, token: randomBytes(12).toString('base64url'), fingerprint, seed: seeded.seed };
    this.put(key, inFlightValue(claim), leaseMs, false);
    return Promise.resolve({ state: 'claimed', claim });
  }

  complete(claim: Claim, response: StoredResponse, ttlSeconds: number): Promise<boolean> {
    if (this.live(claim.key)?.value !== inFlightValue(claim)) return Promise.resolve(false);
    this.put(claim.key, doneValue(claim.fingerprint, response), ttlSeconds * 1000, true);
    return Promise.resolve(true);
  }

  release(claim: Claim): Promise<void> {
    const held = this.live(claim.key);
    if (held?.value === inFlightValue(claim)) this.remove(claim.key, held);
    return Promise.resolve();
  }

  /** The key's entry unless it has expired (an expired one is dropped here). */
  private live(key: string): Held | undefined {
    const held = this.entries.get(key);
    if (held && held.expiresAt <= this.now()) {
      this.remove(key, held);
      return undefined;
    }
    return held;
  }

  private put(key: string, value: string, ttlMs: number, done: boolean): void {
    const previous = this.entries.get(key);
    if (previous) this.remove(key, previous);
    const size = sizeOf(key, value);
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs, size, done });
    this.total += size;
    this.evict();
  }

  /** Drops expired entries, then the oldest answered ones while over the budget. */
  private evict(): void {
    const now = this.now();
    // Seeds are small (a number a key) and at most one a key ever claimed within the TTL; the
    // expired ones go here, oldest first, as the entries do.
    for (const [key, seeded] of this.seeds) {
      if (seeded.expiresAt > now) break;
      this.seeds.delete(key);
    }
    for (const [key, held] of this.entries) {
      if (this.total <= this.maxBytes) break;
      if (held.done || held.expiresAt <= now) this.remove(key, held);
    }
  }

  private remove(key: string, held: Held): void {
    this.entries.delete(key);
    this.total -= held.size;
  }
}
