// Watches the read replicas in the background, so that routing a read costs no query: every
// DATABASE_REPLICA_POLL_MS it reads the primary's WAL position and each replica's replayed
// position. A replica is readable while it answers, is in recovery (a standby, not a promoted
// or unrelated server), was polled recently and is no more than DATABASE_REPLICA_MAX_LAG_MS
// behind; it leaves and comes back by itself.
//
// Lag is measured in time from positions: the primary's positions are kept with the time each
// was read, and a replica that has replayed the primary's position of time T is (now - T)
// behind. An idle primary's position does not move, so an idle replica is 0 behind (unlike
// now() - pg_last_xact_replay_timestamp(), which grows while nothing is written).
import type { Database } from './database.js';
import { parseLsn } from './lsn.js';

export interface ReplicaNode {
  /** A label for logs and metrics: host:port, never the URL (it may hold a password). */
  name: string;
  database: Database;
}

/** What the monitor reports each poll (the metrics implement it). */
export interface ReplicaRecorder {
  /** lagSeconds is undefined while the replica is down or its lag unknown. */
  replica(name: string, up: boolean, lagSeconds: number | undefined): void;
}

export interface ReplicaStatus {
  readonly name: string;
  readonly database: Database;
  /** Answered its last poll (and was not marked down by a failed read since). */
  up: boolean;
  /** pg_is_in_recovery(): false for a promoted or unrelated server, which is never read from. */
  standby: boolean;
  /** pg_last_wal_replay_lsn() at the last poll. */
  replayLsn: bigint | undefined;
  /** Behind the primary at the last poll, ms; undefined when not known. */
  lagMs: number | undefined;
  /** When it last answered a poll (ms since the epoch); 0 never. */
  lastOkAt: number;
}

interface Sample {
  /** When the position was asked for: the primary had at most this position then. */
  at: number;
  lsn: bigint;
}

/**
 * How far behind a replica that replayed up to `replay` is, given the primary's positions by
 * time (oldest first). Undefined when it is behind every kept position: more than the history
 * covers, or not known yet.
 */
export function lagOf(samples: readonly Sample[], replay: bigint, now: number): number | undefined {
  for (let i = samples.length - 1; i >= 0; i--) {
    if (samples[i]!.lsn <= replay) return i === samples.length - 1 ? 0 : Math.max(0, now - samples[i + 1]!.at);
  }
  return undefined;
}

export interface MonitorOptions {
  pollMs: number;
  maxLagMs: number;
}

export class ReplicaMonitor {
  readonly replicas: ReplicaStatus[];
  private samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private polling = new Set<string>();
  private warnedNotStandby = new Set<string>();

  constructor(
    private readonly primary: Database,
    nodes: readonly ReplicaNode[],
    private readonly opts: MonitorOptions,
    private readonly recorder?: ReplicaRecorder,
    private readonly log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void },
  ) {
    this.replicas = nodes.map((n) => ({ name: n.name, database: n.database, up: false, standby: false, replayLsn: undefined, lagMs: undefined, lastOkAt: 0 }));
  }

  /** A poll older than this no longer vouches for a replica. */
  get staleAfterMs(): number {
    return 3 * this.opts.pollMs + 1000;
  }

  /** A poll that has not answered within this marks the replica down. */
  private get pollTimeoutMs(): number {
    return Math.max(1000, 5 * this.opts.pollMs);
  }

  start(): void {
    if (this.timer) return;
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.opts.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Replicas a read may go to now. */
  readable(now = Date.now()): ReplicaStatus[] {
    return this.replicas.filter(
      (r) => r.up && r.standby && now - r.lastOkAt <= this.staleAfterMs && r.lagMs !== undefined && r.lagMs <= this.opts.maxLagMs,
    );
  }

  /** Whether any standby answers at all (to tell "lagging" from "down" in the routing reason). */
  anyUp(now = Date.now()): boolean {
    return this.replicas.some((r) => r.up && r.standby && now - r.lastOkAt <= this.staleAfterMs);
  }

  /** A read on the replica failed for a reason of the replica's (connection lost, recovery conflict). */
  markDown(r: ReplicaStatus, err: unknown): void {
    if (r.up) this.log?.warn({ replica: r.name, err: (err as Error).message }, 'read replica failed; reading elsewhere until it answers a poll again');
    r.up = false;
    this.report(r);
  }

  /** One round: the primary's position, then every replica's (concurrently). */
  async poll(): Promise<void> {
    const now = Date.now();
    await Promise.all([this.pollPrimary(now), ...this.replicas.map((r) => this.pollReplica(r))]);
  }

  private async pollPrimary(at: number): Promise<void> {
    try {
      const [row] = await this.withTimeout(this.primary.raw.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn'));
      const lsn = parseLsn(row?.lsn);
      if (lsn === undefined) return;
      const last = this.samples[this.samples.length - 1];
      // An unchanged position only moves its time on: the history stays short while idle.
      if (last && last.lsn === lsn) last.at = Math.max(last.at, at);
      else if (!last || lsn > last.lsn) this.samples.push({ at, lsn });
      // Behind the last one, read by a later poll: another server is the primary now (a
      // failover; its timeline forked at or before what the old one had written). The old
      // positions say nothing of its lag: measured against them, a replica following the new
      // primary would look further behind every second until the new one wrote past them.
      else if (at > last.at) this.samples = [{ at, lsn }];
      const keepFrom = Date.now() - (2 * this.opts.maxLagMs + 10_000);
      while (this.samples.length > 1 && this.samples[0]!.at < keepFrom && this.samples[1]!.at < keepFrom) this.samples.shift();
    } catch {
      // The primary is unreachable: replicas are measured against what was read before.
    }
  }

  private async pollReplica(r: ReplicaStatus): Promise<void> {
    if (this.polling.has(r.name)) {
      // The previous poll has not answered: a replica that stopped answering is down.
      if (Date.now() - r.lastOkAt > this.pollTimeoutMs && r.up) this.markDown(r, new Error('poll timed out'));
      return;
    }
    this.polling.add(r.name);
    try {
      const [row] = await this.withTimeout(
        r.database.raw.query<{ standby: boolean; lsn: string | null }>('select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as lsn'),
      );
      const wasUp = r.up;
      r.up = true;
      r.lastOkAt = Date.now();
      r.standby = row?.standby === true;
      r.replayLsn = parseLsn(row?.lsn);
      r.lagMs = r.replayLsn === undefined ? undefined : lagOf(this.samples, r.replayLsn, r.lastOkAt);
      if (!r.standby && !this.warnedNotStandby.has(r.name)) {
        this.warnedNotStandby.add(r.name);
        this.log?.warn({ replica: r.name }, 'a DATABASE_READ_URLS server is not in recovery (promoted, or not a replica): never read from');
      }
      if (!wasUp) this.log?.info({ replica: r.name }, 'read replica answers');
    } catch (err) {
      if (r.up) this.log?.warn({ replica: r.name, err: (err as Error).message }, 'read replica unreachable');
      r.up = false;
    } finally {
      this.polling.delete(r.name);
      this.report(r);
    }
  }

  private report(r: ReplicaStatus): void {
    // Behind every kept position: at least as far behind as the oldest one.
    const first = this.samples[0];
    const lagMs = r.lagMs ?? (r.replayLsn !== undefined && first ? Math.max(0, Date.now() - first.at) : undefined);
    const lag = r.up && r.standby && lagMs !== undefined ? lagMs / 1000 : undefined;
    this.recorder?.replica(r.name, r.up && r.standby, lag);
  }

  private withTimeout<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('poll timed out')), this.pollTimeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }
}
