// The shards of the tasks data, as a process routes to them (docs/scaling.md). Without
// TASK_SHARDS there is one shard, `main`, the database of DATABASE_URL as it always was: no map,
// no ownership check. With it, the directory (the database of DATABASE_URL) keeps the bucket map,
// every shard is opened with its replicas, and each write holds its bucket on its shard
// (ownership.ts) so that a move can fence it.
import type { Redis } from 'ioredis';
import type { Config, DatabaseConfig, ShardTarget } from '../../config.js';
import { isDatabaseUnavailable } from '../../shared/db-errors.js';
import { StartupError } from '../../shared/errors.js';
import { openDatabase, type Database } from '../db/database.js';
import { migrate, migrationState } from '../db/migrate.js';
import type { QueryObserver } from '../db/observe.js';
import { openReadReplicas } from '../db/read-replicas.js';
import type { ReadRouteRecorder } from '../db/router.js';
import { BUCKETS, bucketOf, MAIN_SHARD, type OwnerId } from './buckets.js';
import { singleShard, type Shard, type TaskShards } from './set.js';
import { initialiseMap, loadMap, MAP_LOCK, ShardMapCache, type ShardMap } from './map.js';

interface Log {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface OpenShardsOptions {
  redis?: Redis | undefined;
  recorder?: ReadRouteRecorder | undefined;
  /** Statement observers of a shard's primary pool (trace spans, metrics), made per pool. */
  observers?: (poolMax: number) => QueryObserver[];
  /** Statement observers of the shards' replicas (trace spans). */
  replicaObservers?: QueryObserver[];
  log: Log;
  /** Names this process among the map's readers (tests). */
  instance?: string;
}

/** A shard's settings as a database configuration (its pool sized like the main one's). */
export function shardDatabaseConfig(base: DatabaseConfig, target: ShardTarget): DatabaseConfig {
  return { ...base, ...target.primary, replicas: target.replicas };
}

async function openShard(config: Config, target: ShardTarget, opts: OpenShardsOptions): Promise<Database> {
  const dbConfig = shardDatabaseConfig(config.database, target);
  const primary = await openDatabase({
    ...dbConfig,
    applicationName: `task-api-${target.name}`,
    dataDir: '',
    observers: opts.observers?.(dbConfig.poolMax),
    warn: (obj, msg) => opts.log.warn({ ...obj, shard: target.name }, msg),
  });
  try {
    if (config.database.migrateOnStart) await migrate(primary, { taskPartitions: config.database.taskPartitions });
    const { pending } = await migrationState(primary);
    if (pending.length > 0) {
      throw new StartupError(`Shard ${target.name} is missing ${pending.length} migration(s) (${pending.join(', ')}): run task-api migrate with DATABASE_URL set to its URL, or start with MIGRATE_ON_START=true.`);
    }
  } catch (err) {
    // A shard that is down does not keep the process from serving the others' owners: its pool
    // connects when it is back, and its owners get 503 until then (docs/runbooks/shards.md).
    if (isDatabaseUnavailable(err)) {
      opts.log.warn({ shard: target.name, err: (err as Error).message }, 'a shard is unreachable at start; its owners get 503 until it answers');
    } else {
      await primary.close();
      throw err;
    }
  }
  if (target.replicas.length === 0) return primary;
  return openReadReplicas(primary, dbConfig, { redis: opts.redis, recorder: opts.recorder, observers: opts.replicaObservers, log: opts.log, shard: target.name });
}

/**
 * Makes each shard hold exactly the buckets the map gives it, except buckets a move is working on
 * (copy_on set: the mover owns their state). Run at start, under the map lock, so that it never
 * interleaves with a move's steps.
 */
async function reconcileOwnership(directory: Database, shards: readonly Shard[], log: Log): Promise<void> {
  await directory.rawTransaction(async (raw) => {
    await raw.query('select pg_advisory_xact_lock($1)', [MAP_LOCK]);
    const map = await loadMap(raw);
    if (!map) return;
    for (const shard of shards) {
      const mine: number[] = [];
      const others: number[] = [];
      for (let b = 0; b < BUCKETS; b++) {
        if (map.copyOn[b] !== null) continue;
        (map.shard[b] === shard.name ? mine : others).push(b);
      }
      try {
        await shard.database.raw.query('insert into shard_buckets (bucket) select unnest($1::int[]) on conflict do nothing', [mine]);
        await shard.database.raw.query('delete from shard_buckets where bucket = any($1::int[])', [others]);
      } catch (err) {
        // Down now: it keeps the buckets it held (its own rows), and the next start reconciles it.
        if (!isDatabaseUnavailable(err)) throw err;
        log.warn({ shard: shard.name }, 'a shard is unreachable at start: its buckets were not reconciled with the map');
      }
    }
  });
}

/**
 * The shards the configuration names, `main` first (the database already open as `main`, which
 * is also the directory). Refuses to start when the map names a shard the configuration lacks,
 * or when an unsharded configuration meets a map that placed buckets elsewhere.
 */
export async function openTaskShards(config: Config, main: Database, opts: OpenShardsOptions): Promise<TaskShards> {
  if (config.shards.extra.length === 0) {
    if (main.kind === 'postgres') {
      const [row] = await main.raw.query<{ shards: string | null }>(
        "select string_agg(distinct shard, ', ') as shards from shard_map where shard <> 'main' or copy_on is not null",
      );
      if (row?.shards) {
        throw new StartupError(`The bucket map places tasks on shards ${row.shards}, but TASK_SHARDS is not set: set TASK_SHARDS and each SHARD_<NAME>_URL as the other instances have them.`);
      }
    }
    return singleShard(main);
  }
  const shards: Shard[] = [{ name: MAIN_SHARD, database: main, checked: true }];
  try {
    for (const target of config.shards.extra) shards.push({ name: target.name, database: await openShard(config, target, opts), checked: true });
    const names = shards.map((s) => s.name);
    const initial = await initialiseMap(main, names, async () => {
      const [row] = await main.raw.query<{ any: boolean }>('select exists (select 1 from tasks) as any');
      return row?.any === true;
    });
    const unknown = [...new Set([...initial.shard, ...initial.copyOn].filter((s): s is string => s !== null && !names.includes(s)))];
    if (unknown.length > 0) {
      throw new StartupError(`The bucket map places tasks on shards ${unknown.join(', ')}, which TASK_SHARDS does not name (it names ${names.join(', ')}).`);
    }
    await reconcileOwnership(main, shards, opts.log);
    const cache = new ShardMapCache(main, initial, {
      refreshMs: config.shards.mapRefreshMs,
      staleMs: Math.max(5 * config.shards.mapRefreshMs, 2000),
      instance: opts.instance,
      warn: opts.log.warn.bind(opts.log),
    });
    await cache.refresh();
    cache.start();
    opts.log.info({ shards: names, mapVersion: cache.map.version }, 'tasks are sharded by owner');
    return shardedSet(shards, cache);
  } catch (err) {
    await Promise.all(shards.slice(1).map((s) => s.database.close().catch(() => undefined)));
    throw err;
  }
}

function shardedSet(shards: Shard[], cache: ShardMapCache): TaskShards {
  const byName = new Map(shards.map((s) => [s.name, s]));
  const shardOf = (map: ShardMap, owner: OwnerId) => {
    const name = map.shard[bucketOf(owner)]!;
    const shard = byName.get(name);
    if (!shard) throw new Error(`the bucket map names shard ${name}, which this process does not know`);
    return shard;
  };
  const set: TaskShards = {
    sharded: true,
    all: shards,
    of(owner) {
      if (cache.fresh()) return shardOf(cache.map, owner);
      return cache.refresh().then(() => shardOf(cache.map, owner));
    },
    reload: () => cache.refresh(),
    writeMoved: (outcome) => set.recorder?.writeMoved(outcome),
    map: () => cache.map,
    copiesOn(shard) {
      const out: number[] = [];
      const { copyOn } = cache.map;
      for (let b = 0; b < BUCKETS; b++) if (copyOn[b] === shard) out.push(b);
      return out;
    },
    async close() {
      await cache.stop();
      await Promise.all(shards.slice(1).map((s) => s.database.close()));
    },
  };
  return set;
}
