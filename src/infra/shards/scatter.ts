// Reads across shards (the admin's list): ask every shard at once, each within a time limit, and
// merge their ordered pages into one. Keyset pagination stays exact: each shard returns its first
// `limit` rows after the cursor in the same order, so the first `limit` of the merge are the first
// `limit` of all shards together, and the next page starts after the last of them.
import { serviceUnavailable } from '../../shared/errors.js';

/**
 * Runs fn on every shard at once. A shard that fails fails the read with its own error (a
 * database that is away answers 503 through the usual mapping); one that does not answer in
 * time fails it with a 503 naming the shard. The other shards' statements run to their end.
 */
export async function scatter<S extends { name: string }, T>(shards: readonly S[], timeoutMs: number, fn: (shard: S) => Promise<T>): Promise<T[]> {
  const timers: NodeJS.Timeout[] = [];
  try {
    return await Promise.all(
      shards.map((shard) =>
        Promise.race([
          fn(shard),
          new Promise<never>((_, reject) => {
            timers.push(
              setTimeout(() => reject(serviceUnavailable(`Shard ${shard.name} did not answer within ${timeoutMs} ms; the read needs every shard`, 1)), timeoutMs),
            );
          }),
        ]),
      ),
    );
  } finally {
    for (const t of timers) clearTimeout(t);
  }
}

/** Merges lists each sorted by `compare` into the first `limit` items of their union, in order. */
export function mergeSorted<T>(lists: readonly (readonly T[])[], compare: (a: T, b: T) => number, limit: number): T[] {
  const heads = lists.map(() => 0);
  const out: T[] = [];
  while (out.length < limit) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      const item = lists[i]![heads[i]!];
      if (item === undefined) continue;
      if (best < 0 || compare(item, lists[best]![heads[best]!]!) < 0) best = i;
    }
    if (best < 0) break;
    out.push(lists[best]![heads[best]!++]!);
  }
  return out;
}
