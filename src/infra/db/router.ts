// The read/write router (docs/architecture.md: repository -> read/write router -> PostgreSQL).
// Writes and transactions use the primary (`db`, `raw`, `rawTransaction`), as before. A read a
// repository sends through `read(userId, fn)` goes to a streaming replica when that cannot show
// the user less than they already saw:
//
// - After a write of a user's data commits, `wrote(userId)` records the primary's WAL position
//   (pg_current_wal_lsn(), read just after the commit) under the user, in Redis with a TTL (in
//   memory without Redis). The services call it through Platform.dataChanged, before the
//   response cache is invalidated and before the write is answered.
// - A read of that user's goes to a replica whose replayed position (polled in the background,
//   src/infra/db/replicas.ts) is at or past the recorded one; with none recorded (expired, or
//   the user has not written lately) to any readable replica; otherwise to the primary.
// - A replica read that fails because of the replica (connection lost, recovery conflict) is
//   done again on the primary, and the replica is left out until it answers a poll again.
//
// The cost per routed read is one Redis GET, skipped when no replica is readable.
import { isDatabaseUnavailable, pgErrorCode } from '../../shared/db-errors.js';
import type { Database, Db } from './database.js';
import { parseLsn, PRIMARY_ONLY } from './lsn.js';
import type { UserLsnStore } from './lsn-store.js';
import { ReplicaMonitor, type ReplicaNode, type ReplicaRecorder } from './replicas.js';

/** Why a read went where it went: a small bounded set (metric label values). */
export const ROUTE_REASONS = {
  replica: [
    /** No write of the user's is recorded (none lately): any readable replica. */
    'no-recent-write',
    /** The replica has replayed the user's last write. */
    'caught-up',
  ],
  primary: [
    /** Every replica is down (or not a standby). */
    'replicas-down',
    /** Replicas answer but all are further behind than DATABASE_REPLICA_MAX_LAG_MS. */
    'replicas-lagging',
    /** No readable replica has replayed the user's last write yet (read-your-writes). */
    'behind-user-write',
    /** The user's last write position cannot be known now (Redis unreachable or just back). */
    'position-unknown',
    /** The read failed on a replica because of the replica and was done again here. */
    'replica-failed',
  ],
} as const;

export type ReadTarget = keyof typeof ROUTE_REASONS;
export type RouteReason = (typeof ROUTE_REASONS)[ReadTarget][number];

/** What the router reports (the metrics implement it). */
export interface ReadRouteRecorder extends ReplicaRecorder {
  routed(target: ReadTarget, reason: RouteReason): void;
}

export interface RouterOptions {
  pollMs: number;
  maxLagMs: number;
  store: UserLsnStore;
  recorder?: ReadRouteRecorder | undefined;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/**
 * How long a user's write position must be kept: until every replica a read may go to has
 * certainly replayed it (a readable replica is at most maxLag behind, as of a poll at most
 * staleAfter old), with room to spare.
 */
export const positionTtlMs = (o: Pick<RouterOptions, 'maxLagMs' | 'pollMs'>) => 2 * o.maxLagMs + 3 * o.pollMs + 10_000;

/** After the store may have lost a record: as long as a replica read from may lack that write. */
export const unsureMs = (o: Pick<RouterOptions, 'maxLagMs' | 'pollMs'>) => o.maxLagMs + 3 * o.pollMs + 2_000;

/** A failure of the replica's own, after which the read can be done on the primary instead. */
function replicaFailure(err: unknown): boolean {
  // 40001 on a standby: canceled by a conflict with recovery (the replayed WAL needed the rows).
  return isDatabaseUnavailable(err) || pgErrorCode(err) === '40001';
}

export interface RoutedDatabase extends Database {
  readonly monitor: ReplicaMonitor;
}

/**
 * The primary with read replicas behind it. Starts polling at once; close() stops it and
 * closes every pool.
 */
export function routeReads(primary: Database, replicas: readonly ReplicaNode[], opts: RouterOptions): RoutedDatabase {
  const monitor = new ReplicaMonitor(primary, replicas, opts, opts.recorder, opts.log);
  monitor.start();
  const rec = opts.recorder;
  let next = 0;

  async function read<T>(userId: string, fn: (db: Db) => Promise<T>): Promise<T> {
    const readable = monitor.readable();
    if (readable.length === 0) {
      rec?.routed('primary', monitor.anyUp() ? 'replicas-lagging' : 'replicas-down');
      return fn(primary.db);
    }
    const position = await opts.store.get(userId);
    if (position === undefined) {
      rec?.routed('primary', 'position-unknown');
      return fn(primary.db);
    }
    const candidates = position === null ? readable : readable.filter((r) => r.replayLsn !== undefined && r.replayLsn >= position);
    if (candidates.length === 0) {
      rec?.routed('primary', 'behind-user-write');
      return fn(primary.db);
    }
    const replica = candidates[next++ % candidates.length]!;
    if (next >= Number.MAX_SAFE_INTEGER) next = 0;
    rec?.routed('replica', position === null ? 'no-recent-write' : 'caught-up');
    try {
      return await fn(replica.database.db);
    } catch (err) {
      if (!replicaFailure(err)) throw err;
      monitor.markDown(replica, err);
      rec?.routed('primary', 'replica-failed');
      return fn(primary.db);
    }
  }

  async function wrote(userId: string): Promise<void> {
    let position = PRIMARY_ONLY;
    try {
      // Read after the commit: with synchronous_commit on (the default) the commit record is
      // written by then, so this position is at or past it.
      const [row] = await primary.raw.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      position = parseLsn(row?.lsn) ?? PRIMARY_ONLY;
    } catch {
      // Unknown: the user's reads stay on the primary while the record lives.
    }
    await opts.store.record(userId, position);
  }

  return {
    ...primary,
    kind: primary.kind,
    monitor,
    read,
    wrote,
    async close() {
      monitor.stop();
      await Promise.all([primary.close(), ...replicas.map((r) => r.database.close())]);
    },
  };
}
