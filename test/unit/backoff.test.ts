// The retry-delay formula (src/shared/backoff.ts) with an injected random source: doubling from
// the base, capped, then jittered per policy. No timers, no clock.
import { describe, expect, it } from 'vitest';
import { backoffMs, type BackoffPolicy } from '../../src/shared/backoff.js';

const exact: BackoffPolicy = { baseMs: 100, maxMs: 10_000, jitter: 'none' };
const fixed = (r: number) => () => r;
const never = () => {
  throw new Error('random() must not be called');
};

describe('backoffMs', () => {
  it("'none': base for the first retry, doubling after, exactly", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => backoffMs(a, exact, never))).toEqual([100, 200, 400, 800, 1600, 3200, 6400]);
  });

  it('is capped at maxMs from the attempt where doubling passes it', () => {
    expect(backoffMs(7, exact)).toBe(6400);
    expect(backoffMs(8, exact)).toBe(10_000);
    expect(backoffMs(9, exact)).toBe(10_000);
    expect(backoffMs(3, { baseMs: 1000, maxMs: 2500, jitter: 'none' })).toBe(2500);
    // a cap below the base caps the first retry too
    expect(backoffMs(1, { baseMs: 1000, maxMs: 300, jitter: 'none' })).toBe(300);
  });

  it('attempt 1, 0 or negative all give the base', () => {
    for (const a of [1, 0, -1, -100]) expect(backoffMs(a, exact), String(a)).toBe(100);
  });

  it('stays finite and equal to maxMs for very large attempts (2^n overflows to Infinity)', () => {
    for (const a of [64, 1025, 5000, Number.MAX_SAFE_INTEGER]) {
      const d = backoffMs(a, exact);
      expect(Number.isFinite(d), String(a)).toBe(true);
      expect(d, String(a)).toBe(10_000);
    }
    expect(backoffMs(1e6, { baseMs: 1, maxMs: 30_000 }, fixed(0.5))).toBe(15_000);
  });

  it("'full' is the default: random x exponential, floored to whole milliseconds", () => {
    const policy: BackoffPolicy = { baseMs: 100, maxMs: 10_000 };
    expect(backoffMs(3, policy, fixed(0))).toBe(0);
    expect(backoffMs(3, policy, fixed(0.5))).toBe(200);
    expect(backoffMs(3, policy, fixed(0.999))).toBe(399);
    expect(backoffMs(3, policy, fixed(0.12345))).toBe(49);
    expect(backoffMs(3, { ...policy, jitter: 'full' }, fixed(0.999))).toBe(399);
    // never reaches the exponential delay itself, even when capped
    expect(backoffMs(20, policy, fixed(0.999999))).toBe(9999);
  });

  it("'full' calls random once per delay, so failures spread out", () => {
    const values = [0.1, 0.7];
    let calls = 0;
    const random = () => values[calls++]!;
    const policy: BackoffPolicy = { baseMs: 1000, maxMs: 60_000 };
    expect([backoffMs(2, policy, random), backoffMs(2, policy, random)]).toEqual([200, 1400]);
    expect(calls).toBe(2);
  });

  it("'spread' stays within 0.8x..1.2x of the exponential delay", () => {
    const policy: BackoffPolicy = { baseMs: 100, maxMs: 10_000, jitter: 'spread' };
    expect(backoffMs(3, policy, fixed(0))).toBeCloseTo(320, 9);
    expect(backoffMs(3, policy, fixed(0.5))).toBeCloseTo(400, 9);
    expect(backoffMs(3, policy, fixed(0.999))).toBeCloseTo(479.84, 9);
    for (const r of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999]) {
      const d = backoffMs(4, policy, fixed(r));
      expect(d, String(r)).toBeGreaterThanOrEqual(0.8 * 800);
      expect(d, String(r)).toBeLessThan(1.2 * 800);
    }
    // around the cap: around maxMs
    expect(backoffMs(30, policy, fixed(0))).toBeCloseTo(8000, 9);
    expect(backoffMs(30, policy, fixed(0.999999))).toBeLessThan(12_000);
  });

  it('with baseMs 0 (WEBHOOK_BACKOFF_BASE_MS=0 is accepted) every attempt, however late, waits 0, never NaN', () => {
    for (const jitter of ['full', 'spread', 'none'] as const) {
      for (const attempt of [1, 2, 1025, 5000]) expect(backoffMs(attempt, { baseMs: 0, maxMs: 1000, jitter }, fixed(0.5)), `${jitter} ${attempt}`).toBe(0);
    }
    expect(backoffMs(5000, { baseMs: 100, maxMs: 1000, jitter: 'none' })).toBe(1000);
  });
});
