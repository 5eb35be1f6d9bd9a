// Opens the read replicas of DATABASE_READ_URLS and puts the router in front of the primary:
// the entry point (src/infrastructure.ts) calls this once the primary is open and migrated.
import type { Redis } from 'ioredis';
import type { DatabaseConfig } from '../../config.js';
import { openDatabase, type Database } from './database.js';
import { MemoryUserLsnStore, RedisUserLsnStore, type UserLsnStore } from './lsn-store.js';
import type { QueryObserver } from './observe.js';
import type { ReplicaNode } from './replicas.js';
import { positionTtlMs, routeReads, unsureMs, type ReadRouteRecorder, type RoutedDatabase } from './router.js';

interface Log {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** host:port of a URL, never its credentials: the replica's label in logs and metrics. */
export function replicaName(url: string, index: number): string {
  const host = /^postgres(?:ql)?:\/\/(?:[^@/]*@)?([^/?#]*)/.exec(url)?.[1];
  return host || `replica-${index + 1}`;
}

export interface ReadReplicaOptions {
  /** The shared Redis connection: users' write positions live there (in memory without it). */
  redis: Redis | undefined;
  recorder?: ReadRouteRecorder | undefined;
  /** Statement observers for the replica pools (trace spans). */
  observers?: QueryObserver[];
  log: Log;
  /** The shard whose replicas these are (its users' write positions are kept apart); none for the main database. */
  shard?: string;
}

export async function openReadReplicas(primary: Database, config: DatabaseConfig, opts: ReadReplicaOptions): Promise<RoutedDatabase> {
  const nodes: ReplicaNode[] = [];
  const names = new Set<string>();
  for (const [i, target] of config.replicas.entries()) {
    let name = replicaName(target.url, i);
    if (names.has(name)) name = `${name}#${i + 1}`;
    names.add(name);
    const database = await openDatabase({
      url: target.url,
      poolMax: target.poolMax,
      prepare: config.prepare,
      connectTimeoutSeconds: target.connectTimeoutSeconds,
      poolTimeoutMs: target.poolTimeoutMs,
      applicationName: 'task-api-read',
      dataDir: '',
      observers: opts.observers,
    });
    nodes.push({ name, database });
  }
  const timing = { maxLagMs: config.replicaMaxLagMs, pollMs: config.replicaPollMs };
  const store: UserLsnStore = opts.redis
    ? new RedisUserLsnStore(opts.redis, { ttlMs: positionTtlMs(timing), unsureMs: unsureMs(timing), scope: opts.shard }, opts.log)
    : new MemoryUserLsnStore({ ttlMs: positionTtlMs(timing) });
  opts.log.info({ shard: opts.shard, replicas: nodes.map((n) => n.name), maxLagMs: timing.maxLagMs, positions: store.kind }, 'reads are routed to replicas (read-your-writes per user)');
  return routeReads(primary, nodes, { ...timing, store, recorder: opts.recorder, log: opts.log });
}
