// Rows per shard and the plan that evens them out (src/infra/shards/balance.ts): skewOf, and
// planRebalance checked by replaying its moves on the totals it started from.
import { describe, expect, it } from 'vitest';
import { planRebalance, skewOf, type PlannedMove } from '../../src/infra/shards/balance.js';
import { seeded } from './support/random.js';

type Layout = Record<string, Record<number, number>>;

/** Rows per bucket on each shard, as bucketRows gives them. */
const perBucketOf = (layout: Layout) =>
  new Map(Object.entries(layout).map(([name, buckets]) => [name, new Map(Object.entries(buckets).map(([b, rows]) => [Number(b), rows]))]));

const totalsOf = (layout: Layout) => new Map(Object.entries(layout).map(([name, b]) => [name, Object.values(b).reduce((a, c) => a + c, 0)]));


interface Step {
  move: PlannedMove;
  before: Map<string, number>;
  after: Map<string, number>;
  /** The bucket's rows where the plan found it. */
  rowsThere: number | undefined;
}

/** Replays the plan on a copy of the layout; each step with the totals before and after it. */
function replay(layout: Layout, moves: readonly PlannedMove[]): { steps: Step[]; totals: Map<string, number>; where: Map<number, string> } {
  const where = new Map<number, string>();
  const rows = new Map<number, number>();
  for (const [name, buckets] of Object.entries(layout)) {
    for (const [b, n] of Object.entries(buckets)) {
      where.set(Number(b), name);
      rows.set(Number(b), n);
    }
  }
  const totals = totalsOf(layout);
  const steps: Step[] = [];
  for (const move of moves) {
    const before = new Map(totals);
    const rowsThere = where.get(move.bucket) === move.from ? rows.get(move.bucket) : undefined;
    where.set(move.bucket, move.to);
    totals.set(move.from, totals.get(move.from)! - move.rows);
    totals.set(move.to, totals.get(move.to)! + move.rows);
    steps.push({ move, before, after: new Map(totals), rowsThere });
  }
  return { steps, totals, where };
}

/** What every plan must satisfy, whatever the layout. */
function expectSoundPlan(layout: Layout, moves: readonly PlannedMove[], maxSkew: number, maxMoves: number): Map<string, number> {
  expect(moves.length).toBeLessThanOrEqual(maxMoves);
  const { steps, totals, where } = replay(layout, moves);
  for (const { move, before, after, rowsThere } of steps) {
    // The bucket was on the shard it leaves, with the rows the plan says, and not empty.
    expect(rowsThere).toBe(move.rows);
    expect(move.rows).toBeGreaterThan(0);
    expect(move.from).not.toBe(move.to);
    // From the fullest shard to the emptiest.
    expect(before.get(move.from)).toBe(Math.max(...before.values()));
    expect(before.get(move.to)).toBe(Math.min(...before.values()));
    expect(before.get(move.from)!).toBeGreaterThan(before.get(move.to)!);
    // No overshoot: the pair ends closer than it started.
    const gapBefore = before.get(move.from)! - before.get(move.to)!;
    const gapAfter = Math.abs(after.get(move.from)! - after.get(move.to)!);
    expect(gapAfter).toBeLessThan(gapBefore);
  }
  // It stopped for a reason: within the skew, out of moves, or no bucket of the fullest shard helps.
  const skew = skewOf([...totals.values()]);
  if (skew > maxSkew && moves.length < maxMoves) {
    const ordered = [...totals].sort((a, b) => b[1] - a[1]);
    const [full, fullRows] = ordered[0]!;
    const gap = fullRows - ordered[ordered.length - 1]![1];
    const rowsOf = new Map(Object.values(layout).flatMap((b) => Object.entries(b).map(([k, n]) => [Number(k), n] as const)));
    const helpful = [...where].filter(([b, s]) => s === full && rowsOf.get(b)! > 0 && rowsOf.get(b)! < gap);
    expect(helpful).toEqual([]);
  }
  return totals;
}

describe('skewOf', () => {
  it('is 0 for no shards and for shards without rows', () => {
    expect(skewOf([])).toBe(0);
    expect(skewOf([0])).toBe(0);
    expect(skewOf([0, 0, 0])).toBe(0);
  });

  it('is 0 when every shard holds as many rows', () => {
    expect(skewOf([7])).toBe(0);
    expect(skewOf([50, 50, 50])).toBe(0);
  });

  it("is the fullest shard's rows above the mean, as a fraction of it", () => {
    expect(skewOf([30, 0, 0])).toBe(2);
    expect(skewOf([12, 8])).toBeCloseTo(0.2, 12);
    expect(skewOf([100, 0])).toBe(1);
    expect(skewOf([11, 10, 9])).toBeCloseTo(0.1, 12);
  });
});

describe('planRebalance', () => {
  it('plans nothing when the shards are already within the skew', () => {
    expect(planRebalance(perBucketOf({ main: { 0: 50, 1: 50 }, s2: { 2: 50, 3: 50 } }), 0.1, 64)).toEqual([]);
    expect(planRebalance(perBucketOf({ main: { 0: 105 }, s2: { 1: 95 } }), 0.1, 64)).toEqual([]);
    expect(planRebalance(perBucketOf({ main: {}, s2: {} }), 0.1, 64)).toEqual([]);
    expect(planRebalance(new Map(), 0.1, 64)).toEqual([]);
  });

  it('spreads everything on one shard of three until the skew is within bounds', () => {
    const random = seeded(3);
    const main: Record<number, number> = {};
    for (let b = 0; b < 300; b++) main[b] = 1 + Math.floor(random() * 100);
    const layout: Layout = { main, s2: {}, s3: {} };
    const moves = planRebalance(perBucketOf(layout), 0.1, 1000);
    expect(moves.length).toBeGreaterThan(0);
    const totals = expectSoundPlan(layout, moves, 0.1, 1000);
    expect(skewOf([...totals.values()])).toBeLessThanOrEqual(0.1);
    expect(new Set(moves.map((m) => m.to))).toEqual(new Set(['s2', 's3']));
    expect(new Set(moves.map((m) => m.from))).toEqual(new Set(['main']));
    // No bucket moves twice in a plan from one shard out.
    expect(new Set(moves.map((m) => m.bucket)).size).toBe(moves.length);
  });

  it('never moves a bucket without rows', () => {
    const layout: Layout = { main: { 0: 0, 1: 0, 2: 0, 3: 40, 4: 40, 5: 0 }, s2: { 6: 0, 7: 0 } };
    const moves = planRebalance(perBucketOf(layout), 0, 64);
    expect(moves).toEqual([{ bucket: 3, from: 'main', to: 's2', rows: 40 }]);
    // Besides one bucket too big to move, only empty ones: none of them is moved (it would change nothing).
    const hot: Layout = { main: { 0: 0, 1: 100, 2: 0 }, s2: {} };
    expect(planRebalance(perBucketOf(hot), 0, 64)).toEqual([]);
    expect(planRebalance(perBucketOf({ main: { 0: 0, 1: 0 }, s2: {} }), 0, 64)).toEqual([]);
  });

  it('never overshoots: each move leaves the pair closer than it found them', () => {
    // Gap 100: 60 would leave them 20 apart the other way, 45 10 apart; 100 or more never moves.
    const layout: Layout = { main: { 0: 100, 1: 60, 2: 45 }, s2: { 3: 105 } };
    const moves = planRebalance(perBucketOf(layout), 0, 64);
    expect(moves[0]).toEqual({ bucket: 2, from: 'main', to: 's2', rows: 45 });
    expectSoundPlan(layout, moves, 0, 64);
    // A bucket of exactly the gap would only swap the shards' places: not moved.
    expect(planRebalance(perBucketOf({ main: { 0: 100 }, s2: {} }), 0, 64)).toEqual([]);
  });

  it('stops after maxMoves', () => {
    const main: Record<number, number> = {};
    for (let b = 0; b < 100; b++) main[b] = 10;
    const layout: Layout = { main, s2: {}, s3: {} };
    expect(planRebalance(perBucketOf(layout), 0.01, 3)).toHaveLength(3);
    expect(planRebalance(perBucketOf(layout), 0.01, 1)).toHaveLength(1);
    expectSoundPlan(layout, planRebalance(perBucketOf(layout), 0.01, 3), 0.01, 3);
  });

  it('moves buckets only from the fuller shard to the emptier', () => {
    const layout: Layout = { main: { 0: 10, 1: 20, 2: 30 }, s2: { 3: 100, 4: 50, 5: 25, 6: 5 }, s3: { 7: 1 } };
    const moves = planRebalance(perBucketOf(layout), 0.05, 64);
    expect(moves.length).toBeGreaterThan(0);
    expect(moves[0]!.from).toBe('s2');
    expect(moves[0]!.to).toBe('s3');
    expectSoundPlan(layout, moves, 0.05, 64);
  });

  it('stops at once, without looping, when the only bucket to move is too big to split', () => {
    const huge: Layout = { main: { 0: 1_000_000 }, s2: {}, s3: {} };
    expect(planRebalance(perBucketOf(huge), 0.1, 100_000)).toEqual([]);
    // The fullest shard's one bucket is the whole gap; the others' buckets cannot lower the maximum.
    const stuck: Layout = { main: { 0: 1000 }, s2: { 1: 300, 2: 300 }, s3: {} };
    expect(planRebalance(perBucketOf(stuck), 0.1, 100_000)).toEqual([]);
    // Small buckets help first; then only the huge one is left on the fullest shard.
    const mixed: Layout = { main: { 0: 1000, 1: 10, 2: 20 }, s2: { 3: 990 } };
    const moves = planRebalance(perBucketOf(mixed), 0.01, 100_000);
    expect(moves).toEqual([{ bucket: 2, from: 'main', to: 's2', rows: 20 }]);
    expectSoundPlan(mixed, moves, 0.01, 100_000);
  });

  it('keeps every rule on random layouts', () => {
    const random = seeded(99);
    for (let round = 0; round < 200; round++) {
      const shardCount = 2 + Math.floor(random() * 4);
      const layout: Layout = {};
      for (let s = 0; s < shardCount; s++) layout[s === 0 ? 'main' : `s${s + 1}`] = {};
      const names = Object.keys(layout);
      const bucketCount = Math.floor(random() * 60);
      // Skewed: most buckets on the first shard, some empty, some hot.
      for (let b = 0; b < bucketCount; b++) {
        const shard = random() < 0.6 ? names[0]! : names[Math.floor(random() * names.length)]!;
        const r = random();
        layout[shard]![b] = r < 0.15 ? 0 : r < 0.2 ? 500 + Math.floor(random() * 2000) : Math.floor(random() * 100);
      }
      const maxSkew = [0, 0.05, 0.1, 0.5][Math.floor(random() * 4)]!;
      const maxMoves = 1 + Math.floor(random() * 40);
      const moves = planRebalance(perBucketOf(layout), maxSkew, maxMoves);
      expectSoundPlan(layout, moves, maxSkew, maxMoves);
    }
  });

  it('does not change the rows it was given', () => {
    const perBucket = perBucketOf({ main: { 0: 10, 1: 20, 2: 30 }, s2: {} });
    planRebalance(perBucket, 0, 64);
    expect([...perBucket.get('main')!.keys()]).toEqual([0, 1, 2]);
    expect(perBucket.get('s2')!.size).toBe(0);
  });
});
