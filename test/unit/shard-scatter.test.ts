// Reads across shards (src/infra/shards/scatter.ts): every shard at once within a time limit,
// and the merge of their ordered pages into the first `limit` of all of them.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mergeSorted, scatter } from '../../src/infra/shards/scatter.js';
import { AppError } from '../../src/shared/errors.js';
import { seeded } from './support/random.js';


const ascending = (a: number, b: number) => a - b;

describe('mergeSorted', () => {
  it('gives the first `limit` of the union of sorted lists, in order (random lists)', () => {
    const random = seeded(42);
    for (let round = 0; round < 500; round++) {
      const k = Math.floor(random() * 7);
      const lists = Array.from({ length: k }, () =>
        Array.from({ length: Math.floor(random() * 12) }, () => Math.floor(random() * 30)).sort(ascending),
      );
      const total = lists.reduce((n, l) => n + l.length, 0);
      const limit = Math.floor(random() * (total + 5));
      const expected = lists.flat().sort(ascending).slice(0, limit);
      expect(mergeSorted(lists, ascending, limit)).toEqual(expected);
    }
  });

  it('takes each item once, from the lists it was given (newest first, ties included)', () => {
    interface Row {
      at: number;
      id: string;
    }
    const newestFirst = (a: Row, b: Row) => b.at - a.at;
    const random = seeded(5);
    for (let round = 0; round < 200; round++) {
      const lists: Row[][] = Array.from({ length: 1 + Math.floor(random() * 4) }, (_, s) =>
        Array.from({ length: Math.floor(random() * 10) }, (_, i) => ({ at: Math.floor(random() * 8), id: `${s}-${i}` })).sort(newestFirst),
      );
      const all = lists.flat();
      const limit = Math.floor(random() * (all.length + 3));
      const merged = mergeSorted(lists, newestFirst, limit);
      expect(merged).toHaveLength(Math.min(limit, all.length));
      expect(new Set(merged).size).toBe(merged.length);
      for (const row of merged) expect(all).toContain(row);
      expect(merged.map((r) => r.at)).toEqual(all.map((r) => r.at).sort((a, b) => b - a).slice(0, limit));
      // Each list's rows keep their order in the merge.
      for (const list of lists) {
        const taken = merged.filter((r) => list.includes(r));
        expect(taken).toEqual(list.slice(0, taken.length));
      }
    }
  });

  it('handles no lists, empty lists, a limit of 0 and a limit past the total', () => {
    expect(mergeSorted([], ascending, 10)).toEqual([]);
    expect(mergeSorted([[], [], []], ascending, 10)).toEqual([]);
    expect(mergeSorted([[1, 2], [0]], ascending, 0)).toEqual([]);
    expect(mergeSorted([[1, 4], [], [2, 3, 5]], ascending, 100)).toEqual([1, 2, 3, 4, 5]);
    expect(mergeSorted([[], [7]], ascending, 1)).toEqual([7]);
  });
});

describe('scatter', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const shards = [{ name: 'main' }, { name: 's2' }, { name: 's3' }];
  const after = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

  it("gives every shard's answer in the shards' order, whatever order they answer in", async () => {
    vi.useFakeTimers();
    const delays: Record<string, number> = { main: 30, s2: 10, s3: 20 };
    const p = scatter(shards, 1000, (s) => after(delays[s.name]!, `page of ${s.name}`));
    await vi.advanceTimersByTimeAsync(30);
    await expect(p).resolves.toEqual(['page of main', 'page of s2', 'page of s3']);
    // The time limits of all three are cleared: no timer left behind.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('asks every shard at once', async () => {
    const started: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const p = scatter(shards, 1000, async (s) => {
      started.push(s.name);
      await gate;
      return s.name;
    });
    expect(started).toEqual(['main', 's2', 's3']);
    release();
    await expect(p).resolves.toEqual(['main', 's2', 's3']);
  });

  it('gives nothing for no shards', async () => {
    await expect(scatter([], 10, () => Promise.resolve(1))).resolves.toEqual([]);
  });

  it('fails with 503 and Retry-After, naming the shard, when a shard does not answer in time', async () => {
    vi.useFakeTimers();
    const p = scatter(shards, 50, (s) => (s.name === 's2' ? new Promise<string>(() => undefined) : Promise.resolve(s.name)));
    const outcome = p.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await vi.advanceTimersByTimeAsync(49);
    let settled = false;
    void outcome.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const err = await outcome;
    expect(err).toBeInstanceOf(AppError);
    const app = err as AppError;
    expect(app.status).toBe(503);
    expect(app.message).toContain('Shard s2');
    expect(app.message).toContain('50 ms');
    expect(app.message).not.toContain('main');
    expect(app.headers?.['retry-after']).toBe('1');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('fails with real (short) timers too', async () => {
    const p = scatter(shards, 20, (s) => (s.name === 's3' ? after(500, s.name) : Promise.resolve(s.name)));
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(503);
    expect((err as AppError).message).toContain('s3');
  });

  it("fails with a shard's own error when it fails, and clears the time limits", async () => {
    vi.useFakeTimers();
    const boom = new Error('connection refused');
    const p = scatter(shards, 1000, (s) => (s.name === 's3' ? Promise.reject(boom) : after(10, s.name)));
    const outcome = p.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(await outcome).toBe(boom);
    // The three 1000 ms limits are gone; only the other shards' own 10 ms answers remain.
    expect(vi.getTimerCount()).toBe(2);
    await vi.advanceTimersByTimeAsync(10);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('clears the time limits when every shard answers', async () => {
    vi.useFakeTimers();
    await expect(scatter(shards, 5000, (s) => Promise.resolve(s.name))).resolves.toEqual(['main', 's2', 's3']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
