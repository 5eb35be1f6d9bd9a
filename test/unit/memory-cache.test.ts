// The in-process response cache is bounded in bytes: whatever is stored, what it holds never
// passes maxBytes, the least recently used entries go first, and an entry over maxEntryBytes is
// never kept.
import { describe, expect, it } from 'vitest';
import { entrySize, MemoryResponseCache } from '../../src/infra/cache/memory.js';
import type { CachedResponse } from '../../src/infra/cache/types.js';

const KiB = 1024;
const limits = { maxBytes: 64 * KiB, maxEntryBytes: 16 * KiB };

/** A body of about `n` characters; every third one holds a character outside Latin-1 (two bytes a unit in V8). */
const body = (n: number, i: number) => `${i % 3 === 0 ? '\u20ac' : 'e'}${'x'.repeat(Math.max(0, n - 1))}`;
const entry = (n: number, i: number): CachedResponse => ({ body: body(n, i), etag: `"${i}"` });

/** What the cache holds, measured from the outside: every key stored, looked up, sized. */
async function held(cache: MemoryResponseCache, keys: Map<string, string>): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for (const [user, key] of keys) {
    const found = await cache.lookup(user, key);
    if (found?.entry) {
      count++;
      bytes += entrySize(found.storeKey, found.entry);
    }
  }
  return { count, bytes };
}

describe('memory response cache', () => {
  it('never holds more than maxBytes, however many large entries are stored', async () => {
    const cache = new MemoryResponseCache(limits);
    const keys = new Map<string, string>();
    for (let i = 0; i < 400; i++) {
      const user = `user-${i % 7}-${i}`;
      const key = `/v1/tasks||limit=${i}`;
      const { storeKey } = (await cache.lookup(user, key))!;
      // sizes from 1 KiB up to just under the entry cap, in a fixed scatter
      const size = 1 * KiB + ((i * 7919) % (limits.maxEntryBytes / 2 - 1 * KiB));
      expect(await cache.store(storeKey, entry(size, i), 300)).toBe(true);
      keys.set(user, key);
      expect(cache.bytes).toBeLessThanOrEqual(limits.maxBytes);
    }
    const now = await held(cache, keys);
    expect(now.bytes).toBeLessThanOrEqual(limits.maxBytes);
    expect(now.bytes).toBe(cache.bytes);
    expect(now.count).toBe(cache.size);
    // It does fill up: evicting only what it must, it holds more than a budget less one entry.
    expect(now.bytes).toBeGreaterThan(limits.maxBytes - 2 * limits.maxEntryBytes);
    expect(now.count).toBeLessThan(400);
  });

  it('drops the least recently used entries first: a read keeps an entry', async () => {
    const cache = new MemoryResponseCache(limits);
    const put = async (user: string, n: number, i: number) => cache.store((await cache.lookup(user, 'k'))!.storeKey, entry(n, i), 300);
    await put('first', 8 * KiB, 1);
    await put('second', 8 * KiB, 2);
    for (let i = 0; i < 20; i++) {
      expect((await cache.lookup('first', 'k'))?.entry?.etag).toBe('"1"'); // read before every store
      await put(`filler-${i}`, 8 * KiB, 10 + i);
    }
    expect((await cache.lookup('first', 'k'))?.entry?.etag).toBe('"1"');
    expect((await cache.lookup('second', 'k'))?.entry).toBeNull();
    expect(cache.bytes).toBeLessThanOrEqual(limits.maxBytes);
  });

  it('never keeps an entry larger than maxEntryBytes, in UTF-8 bytes as sent', async () => {
    const cache = new MemoryResponseCache(limits);
    const { storeKey } = (await cache.lookup('u', 'big'))!;
    expect(await cache.store(storeKey, { body: 'x'.repeat(limits.maxEntryBytes + 1), etag: '"big"' }, 300)).toBe(false);
    // 6000 three-byte characters are 18,000 bytes on the wire: over the cap although only 6000 units long
    expect(await cache.store(storeKey, { body: '\u20ac'.repeat(6000), etag: '"euro"' }, 300)).toBe(false);
    expect((await cache.lookup('u', 'big'))?.entry).toBeNull();
    expect([cache.bytes, cache.size]).toEqual([0, 0]);
    expect(await cache.store(storeKey, { body: 'x'.repeat(limits.maxEntryBytes), etag: '"edge"' }, 300)).toBe(true);
    expect((await cache.lookup('u', 'big'))?.entry?.etag).toBe('"edge"');
  });

  it('a replaced or expired entry gives its bytes back', async () => {
    let now = 1_000_000;
    const cache = new MemoryResponseCache(limits, () => now);
    const { storeKey } = (await cache.lookup('u', 'k'))!;
    await cache.store(storeKey, entry(4 * KiB, 1), 60);
    const one = cache.bytes;
    await cache.store(storeKey, entry(4 * KiB, 1), 60);
    expect([cache.bytes, cache.size]).toEqual([one, 1]);
    now += 61_000;
    expect((await cache.lookup('u', 'k'))?.entry).toBeNull();
    expect([cache.bytes, cache.size]).toEqual([0, 0]);
  });
});
