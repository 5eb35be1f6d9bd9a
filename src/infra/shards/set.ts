// The shards of the tasks data as the modules see them: the types, and the one database of an
// unsharded deployment. Kept apart from shards.ts (which opens pools, replicas and the map) so
// that the modules' table can load without the database and Redis drivers: the CLI reads it
// before tracing starts, and a driver loaded before then is never instrumented.
import type { Database } from '../db/database.js';
import { MAIN_SHARD, type OwnerId } from './buckets.js';
import type { ShardMap } from './map.js';

export interface Shard {
  readonly name: string;
  /** The shard's primary, reads routed to its replicas (read-your-writes per owner). */
  readonly database: Database;
  /** Writes hold their bucket (a sharded deployment); false on the one database of an unsharded one. */
  readonly checked: boolean;
}

/** What the shards report (the metrics implement it). */
export interface ShardRecorder {
  writeMoved(outcome: 'rerouted' | 'fenced'): void;
}

export interface TaskShards {
  /** TASK_SHARDS is set: the map decides, writes hold their buckets. */
  readonly sharded: boolean;
  readonly all: readonly Shard[];
  /** The shard that holds the owner's bucket, by this process's map (reloaded first when stale). */
  of(owner: OwnerId): Shard | Promise<Shard>;
  /** A write found its bucket gone from the shard it went to: reloads the map at once. */
  reload(): Promise<void>;
  /** Such a write was sent on to the bucket's new shard, or refused while the bucket is fenced. */
  writeMoved(outcome: 'rerouted' | 'fenced'): void;
  /** Where writeMoved reports (set once the metrics exist). */
  recorder?: ShardRecorder | undefined;
  /** The map this process routes by (undefined when not sharded). */
  map(): ShardMap | undefined;
  /** Buckets whose rows on this shard are a move's copy, not the bucket's rows: scans leave them out. */
  copiesOn(shard: string): number[];
  close(): Promise<void>;
}

/** One database, not sharded. */
export function singleShard(database: Database): TaskShards {
  const main: Shard = { name: MAIN_SHARD, database, checked: false };
  return {
    sharded: false,
    all: [main],
    of: () => main,
    reload: () => Promise.resolve(),
    writeMoved: () => undefined,
    map: () => undefined,
    copiesOn: () => [],
    close: () => Promise.resolve(),
  };
}
