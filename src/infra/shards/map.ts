// The bucket map: which shard holds each bucket (migrations/0010_shards.sql). It lives in the
// directory database; every instance keeps a copy in memory (ShardMapCache), polls the map's
// version and reloads it when it moves, and reports the version it has loaded, so that a move
// (move.ts) can wait until every live instance routes by the flipped map.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Database, RawSql } from '../db/database.js';
import { BUCKETS, MAIN_SHARD } from './buckets.js';

/** One version of the map. */
export interface ShardMap {
  version: number;
  /** The shard of each bucket, by bucket number. */
  shard: readonly string[];
  /** A shard that still holds a copy of the bucket's rows (a move under way), else null. */
  copyOn: readonly (string | null)[];
}

/** The directory's advisory lock that orders changes of the map with the shards' ownership. */
export const MAP_LOCK = 7_340_212;

export async function loadMap(raw: RawSql): Promise<ShardMap | undefined> {
  const [v] = await raw.query<{ version: string }>('select version::text as version from shard_map_version');
  if (!v) return undefined;
  const rows = await raw.query<{ bucket: number; shard: string; copy_on: string | null }>('select bucket, shard, copy_on from shard_map order by bucket');
  const shard: string[] = new Array<string>(BUCKETS).fill(MAIN_SHARD);
  const copyOn: (string | null)[] = new Array<string | null>(BUCKETS).fill(null);
  for (const r of rows) {
    shard[r.bucket] = r.shard;
    copyOn[r.bucket] = r.copy_on;
  }
  return { version: Number(v.version), shard, copyOn };
}

/** Bumps the map's version in the caller's transaction; returns the new version. */
export async function bumpVersion(raw: RawSql): Promise<number> {
  const [row] = await raw.query<{ version: string }>('update shard_map_version set version = version + 1 returning version::text as version');
  if (!row) throw new Error('the bucket map is not initialised (no shard_map_version row)');
  return Number(row.version);
}

/**
 * Creates the map on first use, under the map lock: every bucket on the main shard when it
 * already holds tasks (today's database stays as it is; `task-api shards rebalance` spreads them
 * later), else spread evenly over the given shards. Returns the map as it stands.
 */
export async function initialiseMap(directory: Database, shards: readonly string[], mainHoldsData: () => Promise<boolean>): Promise<ShardMap> {
  await directory.rawTransaction(async (raw) => {
    await raw.query('select pg_advisory_xact_lock($1)', [MAP_LOCK]);
    const [present] = await raw.query('select 1 from shard_map_version');
    if (present) return;
    const spread = !(await mainHoldsData());
    const names = spread ? shards : [MAIN_SHARD];
    const buckets = Array.from({ length: BUCKETS }, (_, b) => b);
    await raw.query('insert into shard_map (bucket, shard) select b, s from unnest($1::int[], $2::text[]) as x(b, s)', [
      buckets,
      buckets.map((b) => names[b % names.length]!),
    ]);
    await raw.query('insert into shard_map_version (version) values (1)');
  });
  const map = await loadMap(directory.raw);
  if (!map) throw new Error('the bucket map could not be initialised');
  return map;
}

/** A process's name among the map's readers (shard_clients.instance). */
export const instanceName = () => `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

export interface MapCacheOptions {
  /** How often the version is polled. */
  refreshMs: number;
  /** A map not confirmed for this long is reloaded before a request is routed by it. */
  staleMs: number;
  instance?: string;
  warn?: (obj: object, msg: string) => void;
}

/** The map as this process routes by it, kept fresh by polling the directory. */
export class ShardMapCache {
  readonly instance: string;
  private confirmedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly directory: Database,
    private current: ShardMap,
    private readonly opts: MapCacheOptions,
  ) {
    this.instance = opts.instance ?? instanceName();
  }

  get map(): ShardMap {
    return this.current;
  }

  /** Whether the map was confirmed recently enough to route by without asking again. */
  fresh(now = Date.now()): boolean {
    return now - this.confirmedAt < this.opts.staleMs;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        void this.refresh()
          .catch((err: unknown) => this.opts.warn?.({ err }, 'the bucket map could not be refreshed'))
          .finally(tick);
      }, this.opts.refreshMs);
      this.timer.unref();
    };
    tick();
  }

  /**
   * Reports the loaded version, reads the current one and reloads the map when it moved.
   * Concurrent calls share one poll.
   */
  refresh(): Promise<void> {
    return (this.polling ??= this.poll().finally(() => (this.polling = undefined)));
  }

  private async poll(): Promise<void> {
    const started = Date.now();
    const [row] = await this.directory.raw.query<{ version: string }>(
      `with seen as (
         insert into shard_clients (instance, version, seen_at) values ($1, $2, now())
         on conflict (instance) do update set version = excluded.version, seen_at = excluded.seen_at
       )
       select version::text as version from shard_map_version`,
      [this.instance, this.current.version],
    );
    if (row && Number(row.version) !== this.current.version) {
      const map = await loadMap(this.directory.raw);
      if (map) this.current = map;
    }
    this.confirmedAt = started;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling?.catch(() => undefined);
    await this.directory.raw.query('delete from shard_clients where instance = $1', [this.instance]).catch(() => undefined);
  }
}
