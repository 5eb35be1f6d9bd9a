// The owner -> bucket hash (src/infra/shards/buckets.ts): the same bucket on every process and in
// PostgreSQL (owner_bucket, migrations/0010_shards.sql), and an even spread over the buckets.
import { describe, expect, it } from 'vitest';
import { BUCKETS, bucketOf } from '../../src/infra/shards/buckets.js';
import { seeded } from './support/random.js';


/** A version 4 uuid from the generator, lower-case as PostgreSQL writes it. */
function uuidOf(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = '4';
  hex[16] = (8 + Math.floor(random() * 4)).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

describe('bucketOf', () => {
  it('has 1024 buckets', () => {
    expect(BUCKETS).toBe(1024);
  });

  it('gives the bucket PostgreSQL owner_bucket gives for a known uuid', () => {
    // md5 = e0e69950...; 0xe0e69950 % 1024 = 336.
    expect(bucketOf('0190c7a2-1234-7abc-8def-0123456789ab')).toBe(336);
  });

  it('is an integer in [0, 1024) and the same on every call', () => {
    const random = seeded(7);
    for (let i = 0; i < 2000; i++) {
      const id = uuidOf(random);
      const b = bucketOf(id);
      expect(Number.isInteger(b)).toBe(true);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
      expect(bucketOf(id)).toBe(b);
    }
  });

  it('lower-cases its input (an upper-case uuid is the same owner)', () => {
    const id = '0190c7a2-1234-7abc-8def-0123456789ab';
    expect(bucketOf(id.toUpperCase())).toBe(336);
    const random = seeded(11);
    for (let i = 0; i < 200; i++) {
      const other = uuidOf(random);
      expect(bucketOf(other.toUpperCase())).toBe(bucketOf(other));
    }
  });

  it('spreads 100k random uuids over every bucket, roughly evenly', () => {
    const random = seeded(20240613);
    const counts = new Array<number>(BUCKETS).fill(0);
    const n = 100_000;
    for (let i = 0; i < n; i++) counts[bucketOf(uuidOf(random))]!++;
    const min = Math.min(...counts);
    const max = Math.max(...counts);
    // About 98 a bucket (standard deviation about 10): generous bounds that a skewed hash misses.
    expect(min).toBeGreaterThan(0);
    expect(min).toBeGreaterThanOrEqual(50);
    expect(max).toBeLessThanOrEqual(150);
    expect(max / min).toBeLessThan(3);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(n);
  });
});
