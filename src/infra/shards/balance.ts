// How the tasks data sits on the shards (`task-api shards status`) and which bucket moves even
// it out (`task-api shards rebalance`). Rows are counted from task_counts (one row per owner with
// the owner's number of tasks): no scan of the tasks themselves.
import { BUCKETS, MAIN_SHARD } from './buckets.js';
import type { ShardFleet } from './fleet.js';
import { loadMap, type ShardMap } from './map.js';

export interface ShardLoad {
  name: string;
  buckets: number;
  rows: number;
}

export interface ShardsStatus {
  shards: ShardLoad[];
  /** How far the fullest shard is above the mean, as a fraction of the mean (0: even; 0.1: 10 % above). */
  skew: number;
  /** The map's version. */
  version: number;
  /** Buckets with a move under way (copy_on set). */
  moving: number[];
}

/** Tasks per bucket on each shard, counting only the buckets the map gives it (never a move's copy). */
export async function bucketRows(fleet: ShardFleet, map: ShardMap): Promise<Map<string, Map<number, number>>> {
  const out = new Map<string, Map<number, number>>();
  await Promise.all(
    [...fleet.shards.values()].map(async (node) => {
      const rows = await node.db.raw.query<{ bucket: number; n: string }>(
        'select owner_bucket(user_id) as bucket, sum(tasks)::bigint::text as n from task_counts group by 1',
      );
      const mine = new Map<number, number>();
      for (let b = 0; b < BUCKETS; b++) if (map.shard[b] === node.name) mine.set(b, 0);
      for (const r of rows) if (mine.has(r.bucket)) mine.set(r.bucket, Number(r.n));
      out.set(node.name, mine);
    }),
  );
  return out;
}

export function skewOf(rows: readonly number[]): number {
  const total = rows.reduce((a, b) => a + b, 0);
  if (rows.length === 0 || total === 0) return 0;
  const mean = total / rows.length;
  return Math.max(...rows) / mean - 1;
}

export async function shardsStatus(fleet: ShardFleet): Promise<ShardsStatus> {
  // No map yet (never started with TASK_SHARDS): every bucket is on the main shard, version 0.
  const map = (await loadMap(fleet.directory.raw)) ?? {
    version: 0,
    shard: new Array<string>(BUCKETS).fill(MAIN_SHARD),
    copyOn: new Array<string | null>(BUCKETS).fill(null),
  };
  const perBucket = await bucketRows(fleet, map);
  const shards = [...fleet.shards.keys()].map((name) => {
    const buckets = perBucket.get(name)!;
    return { name, buckets: buckets.size, rows: [...buckets.values()].reduce((a, b) => a + b, 0) };
  });
  const moving: number[] = [];
  map.copyOn.forEach((c, b) => c !== null && moving.push(b));
  return { shards, skew: Number(skewOf(shards.map((s) => s.rows)).toFixed(4)), version: map.version, moving };
}

export interface PlannedMove {
  bucket: number;
  from: string;
  to: string;
  rows: number;
}

/**
 * Moves that bring the skew within `maxSkew`, greedily: from the fullest shard to the emptiest,
 * the bucket whose rows close most of the gap between them without overshooting it. Stops when
 * the skew is within bounds, no bucket helps, or after `maxMoves`.
 */
export function planRebalance(perBucket: ReadonlyMap<string, ReadonlyMap<number, number>>, maxSkew: number, maxMoves: number): PlannedMove[] {
  const buckets = new Map([...perBucket].map(([name, m]) => [name, new Map(m)]));
  const totals = new Map([...buckets].map(([name, m]) => [name, [...m.values()].reduce((a, b) => a + b, 0)]));
  const moves: PlannedMove[] = [];
  while (moves.length < maxMoves && skewOf([...totals.values()]) > maxSkew) {
    const ordered = [...totals].sort((a, b) => b[1] - a[1]);
    const [full, fullRows] = ordered[0]!;
    const [empty, emptyRows] = ordered[ordered.length - 1]!;
    const gap = fullRows - emptyRows;
    let best: [number, number] | undefined;
    for (const [bucket, rows] of buckets.get(full)!) {
      // Moving `rows` leaves the pair |gap - 2 rows| apart: it helps when rows < gap.
      if (rows <= 0 || rows >= gap) continue;
      // Of two that help as much, the smaller: fewer rows to copy.
      const left = Math.abs(gap - 2 * rows);
      const bestLeft = best ? Math.abs(gap - 2 * best[1]) : Infinity;
      if (left < bestLeft || (left === bestLeft && rows < best![1])) best = [bucket, rows];
    }
    if (!best) break;
    const [bucket, rows] = best;
    buckets.get(full)!.delete(bucket);
    buckets.get(empty)!.set(bucket, rows);
    totals.set(full, fullRows - rows);
    totals.set(empty, emptyRows + rows);
    moves.push({ bucket, from: full, to: empty, rows });
  }
  return moves;
}
