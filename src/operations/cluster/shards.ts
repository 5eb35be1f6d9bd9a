// The shards of the tasks data in a local topology (`cluster start --shards N`): `main` is the
// cluster's primary (the database the tasks data lives in there), and s2 ... sN are PostgreSQL
// servers of their own (pg-s2, with replicas pg-s2-replica-1, ...), each with a database of the
// same name. The API instances that run the tasks module reach each shard's primary through
// PgBouncer (database <database>_<shard> there) and its replicas directly, as they reach main;
// an operational command reaches every primary directly (shardEnvOf).
import { shardVariable } from '../../config.js';
import { MAIN_SHARD } from '../../infra/shards/buckets.js';
import { pgUrl } from './postgres.js';
import { readState, type ClusterState, type ShardRecord } from './state.js';

export { MAIN_SHARD };

/** The names of the shards besides main for `--shards N`: s2 ... sN. */
export function extraShardNames(count: number): string[] {
  return Array.from({ length: Math.max(0, count - 1) }, (_, i) => `s${i + 2}`);
}

/** The name PgBouncer serves an extra shard's database under: <database>_<shard>. */
export const pgbouncerDatabase = (database: string, shard: string) => `${database}_${shard.replace(/-/g, '_')}`;

/** A PostgreSQL server of the topology: its primary's port and its replicas' ports. */
export interface ShardServers {
  primaryPort: number;
  replicaPorts: number[];
  /** Each replica's address, when not loopback (--ha --netns: the members' namespace addresses). */
  replicaHosts?: string[];
}

export interface ShardLayout {
  /** The database the tasks data lives in, on every shard (task_api; task_api_tasks when split). */
  database: string;
  pgbouncerPort: number;
  /** The cluster's primary and replicas. */
  main: ShardServers;
  /** The other shards, by name, in order. */
  extra: (ShardServers & { name: string })[];
}

/** Each shard's URLs: main first, then the extra shards in order. */
export function shardRecords(l: ShardLayout): ShardRecord[] {
  const record = (name: string, viaPgBouncer: string, s: ShardServers): ShardRecord => ({
    name,
    url: pgUrl(l.pgbouncerPort, viaPgBouncer),
    readUrls: s.replicaPorts.map((p, i) => pgUrl(p, l.database, s.replicaHosts?.[i])),
    primaryUrl: pgUrl(s.primaryPort, l.database),
  });
  return [record(MAIN_SHARD, l.database, l.main), ...l.extra.map((s) => record(s.name, pgbouncerDatabase(l.database, s.name), s))];
}

/**
 * TASK_SHARDS (the shards besides main) and each one's SHARD_<NAME>_URL and SHARD_<NAME>_READ_URLS
 * (the latter only when it has replicas): `url` for the API instances (through PgBouncer),
 * `primaryUrl` for a command that needs the servers themselves. Nothing with main alone.
 */
export function shardVariables(shards: readonly ShardRecord[], via: 'url' | 'primaryUrl'): Record<string, string> {
  const extra = shards.filter((s) => s.name !== MAIN_SHARD);
  if (extra.length === 0) return {};
  const env: Record<string, string> = { TASK_SHARDS: extra.map((s) => s.name).join(',') };
  for (const s of extra) {
    env[shardVariable(s.name, 'URL')] = s[via];
    if (s.readUrls.length > 0) env[shardVariable(s.name, 'READ_URLS')] = s.readUrls.join(',');
  }
  return env;
}

/**
 * The cluster's shards. A cluster started before shards were recorded has main alone: its
 * primary and replicas, the tasks database (the tasks service's when split), through PgBouncer.
 */
export function shardsOf(state: ClusterState): ShardRecord[] {
  if (state.shards) return state.shards;
  const main = state.processes.filter((p) => p.shard === undefined);
  const primary = main.find((p) => p.role === 'postgres-primary');
  const pgbouncer = main.find((p) => p.role === 'pgbouncer');
  if (!primary || !pgbouncer) return [];
  const database = state.databases?.tasks ?? new URL(primary.urls.url ?? pgUrl(primary.port)).pathname.slice(1);
  return shardRecords({
    database,
    pgbouncerPort: pgbouncer.port,
    main: { primaryPort: primary.port, replicaPorts: main.filter((p) => p.role === 'postgres-replica').map((p) => p.port) },
    extra: [],
  });
}

/**
 * What an operational command (`task-api shards ... --dir D`) needs to reach the sharded data
 * of the cluster under `dir`: DATABASE_URL, the main shard (the directory, where the bucket map
 * lives), and every extra shard's SHARD_<NAME>_URL, all of them the primary servers themselves,
 * not PgBouncer (a move uses session features: advisory locks, long transactions); the replicas
 * in SHARD_<NAME>_READ_URLS; TASK_SHARDS when there is more than main.
 */
export function shardEnvOf(dir: string): Record<string, string> {
  const state = readState(dir);
  const shards = shardsOf(state);
  const main = shards.find((s) => s.name === MAIN_SHARD);
  if (!main) throw new Error(`the cluster under ${dir} records no PostgreSQL primary`);
  return { DATABASE_URL: main.primaryUrl, ...shardVariables(shards, 'primaryUrl') };
}
