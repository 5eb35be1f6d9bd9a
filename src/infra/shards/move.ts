// Moving a bucket from one shard to another while the API serves it (`task-api shards move`).
//
//  1. Mark the move in the map (copy_on = target): reads across shards leave the target's copy out.
//  2. Copy the bucket's rows (tasks, task_counts, task_owners) to the target, then catch up: each
//     round compares (id, version) on both sides and copies what changed meanwhile, until a round
//     finds little left to do.
//  3. Fence: delete the bucket's row from the source's shard_buckets. That waits for the writes in
//     flight (each holds the row); later writes find no row and answer 503 with Retry-After.
//  4. Copy the rest (the last round, now exact), wait for the source's outbox to publish the
//     bucket's events (their order before the target's), verify counts and checksums of every
//     table on both sides, and wait until the target's replicas have replayed the copy.
//  5. Flip the map (shard = target, copy_on = source), wait until every live instance has loaded
//     it, then let the target hold the bucket: writes resume there.
//  6. After a grace period (requests routed by the old map finish), delete the source's rows and
//     clear copy_on.
//
// A move that fails before the flip is undone (the source holds the bucket again, the target's
// copy is deleted). A move interrupted anywhere is finished or undone by running it again.
import type { Database, RawSql } from '../db/database.js';
import { BUCKETS } from './buckets.js';
import type { ShardFleet, ShardNode } from './fleet.js';
import { bumpVersion, loadMap, MAP_LOCK, type ShardMap } from './map.js';

/** The tables of a shard that hold an owner's rows, with their keys. */
export const SHARDED_TABLES = [
  // An owner's task_counts row first: a copy interrupted anywhere leaves no task on the target
  // whose owner ownersOn() would not find (the undo deletes by owner).
  { name: 'task_counts', key: ['user_id'] },
  { name: 'task_owners', key: ['user_id'] },
  { name: 'tasks', key: ['user_id', 'id'] },
] as const;

export interface MoveOptions {
  bucket: number;
  to: string;
  /** Catch-up ends when a round copied at most this many rows (then the fence). */
  catchUpRows?: number;
  maxRounds?: number;
  /** How long to wait for every live instance to load the flipped map. */
  ackTimeoutMs?: number;
  /** An instance not heard from for this long is not waited for (its own map is stale by then: it reloads before routing). */
  staleClientMs?: number;
  /** How long the source keeps its rows after the target took the bucket. */
  graceMs?: number;
  /** How long to wait for the target's replicas to replay the copy. */
  settleTimeoutMs?: number;
  /**
   * How long, under the fence, to wait for the source's relay to publish the bucket's pending
   * events (so that they go out before the target's); what is left is published after the move.
   */
  outboxWaitMs?: number;
  say?: (line: string) => void;
}

export interface TableCheck {
  rows: number;
  checksum: string;
}

export interface MoveReport {
  bucket: number;
  from: string;
  to: string;
  /** The bucket's owners moved (users with rows). */
  owners: number;
  /** Rows per table, verified equal on both sides under the fence. */
  tables: Record<string, TableCheck>;
  /** Catch-up rounds before the fence. */
  rounds: number;
  /** How long the bucket took no writes. */
  fencedMs: number;
  /** The map's version after the flip. */
  version: number;
  /** Nothing to do: the bucket was on the target already. */
  noop?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function columnsOf(raw: RawSql, table: string): Promise<string[]> {
  const rows = await raw.query<{ column_name: string }>(
    "select column_name from information_schema.columns where table_schema = current_schema() and table_name = $1 and is_generated = 'NEVER' order by ordinal_position",
    [table],
  );
  return rows.map((r) => r.column_name);
}

/** The owners with rows in the bucket on a shard: every owner of a task has a task_counts row. */
async function ownersOn(raw: RawSql, bucket: number): Promise<string[]> {
  const rows = await raw.query<{ user_id: string }>(
    `select user_id::text from task_counts where owner_bucket(user_id) = $1
     union select user_id::text from task_owners where owner_bucket(user_id) = $1`,
    [bucket],
  );
  return rows.map((r) => r.user_id);
}

const CHUNK = 1000;

/**
 * One round: makes the target's rows of these owners equal to the source's. Returns how many
 * rows it wrote or deleted on the target.
 */
async function syncOwners(from: Database, to: Database, owners: string[], columns: Map<string, string[]>): Promise<number> {
  let changed = 0;
  for (const table of SHARDED_TABLES) {
    const cols = columns.get(table.name)!;
    const keyList = table.key.join(', ');
    // What each side has: the key and a fingerprint of the row (tasks: its version; the others are one small row per owner).
    const stamp = table.name === 'tasks' ? 'version::text' : `md5(row(${cols.join(', ')})::text)`;
    const listing = `select ${table.key.map((k) => `${k}::text`).join(', ')}, ${stamp} as stamp from ${table.name} where user_id = any($1::uuid[])`;
    const [src, dst] = await Promise.all([
      from.raw.query<Record<string, string>>(listing, [owners]),
      to.raw.query<Record<string, string>>(listing, [owners]),
    ]);
    const keyOf = (r: Record<string, string>) => table.key.map((k) => r[k]).join('/');
    const have = new Map(dst.map((r) => [keyOf(r), r.stamp]));
    const wanted = new Set(src.map(keyOf));
    const copy = src.filter((r) => have.get(keyOf(r)) !== r.stamp);
    const extra = dst.filter((r) => !wanted.has(keyOf(r)));
    for (let i = 0; i < copy.length; i += CHUNK) {
      const part = copy.slice(i, i + CHUNK);
      const keyArrays = table.key.map((k) => part.map((r) => r[k]));
      const match = `(${keyList}) in (select * from unnest(${table.key.map((_, j) => `$${j + 1}::uuid[]`).join(', ')}))`;
      const [json] = await from.raw.query<{ rows: string }>(
        `select coalesce(json_agg(t), '[]'::json)::text as rows from (select ${cols.join(', ')} from ${table.name} where ${match}) t`,
        keyArrays,
      );
      const updates = cols.filter((c) => !(table.key as readonly string[]).includes(c)).map((c) => `${c} = excluded.${c}`);
      await to.raw.query(
        `insert into ${table.name} (${cols.join(', ')}) select ${cols.join(', ')} from json_populate_recordset(null::${table.name}, $1::json)
         on conflict (${keyList}) do update set ${updates.join(', ')}`,
        [json?.rows ?? '[]'],
      );
    }
    for (let i = 0; i < extra.length; i += CHUNK) {
      const part = extra.slice(i, i + CHUNK);
      await to.raw.query(
        `delete from ${table.name} where (${keyList}) in (select * from unnest(${table.key.map((_, j) => `$${j + 1}::uuid[]`).join(', ')}))`,
        table.key.map((k) => part.map((r) => r[k])),
      );
    }
    changed += copy.length + extra.length;
  }
  return changed;
}

/** Row counts and checksums of the owners' rows, per table (timestamps written in UTC on both sides). */
export async function checksums(db: Database, owners: string[], columns: Map<string, string[]>): Promise<Record<string, TableCheck>> {
  return db.rawTransaction(async (raw) => {
    await raw.query("set local timezone = 'UTC'");
    const out: Record<string, TableCheck> = {};
    for (const table of SHARDED_TABLES) {
      const cols = columns.get(table.name)!;
      const [row] = await raw.query<{ n: number; sum: string }>(
        `select count(*)::int as n, coalesce(md5(string_agg(t::text, '|' order by ${table.key.join(', ')})), '') as sum
         from (select ${cols.join(', ')} from ${table.name} where user_id = any($1::uuid[])) t`,
        [owners],
      );
      out[table.name] = { rows: row?.n ?? 0, checksum: row?.sum ?? '' };
    }
    return out;
  });
}

async function deleteOwners(db: Database, owners: string[]): Promise<void> {
  for (let i = 0; i < owners.length; i += CHUNK) {
    const part = owners.slice(i, i + CHUNK);
    await db.rawTransaction(async (raw) => {
      for (const table of SHARDED_TABLES) await raw.query(`delete from ${table.name} where user_id = any($1::uuid[])`, [part]);
    });
  }
}

/**
 * Moves the rows of these owners from one shard to another outright: a bulk load's placement
 * (`task-api seed` writes every owner's rows on the main shard first), not a move under load:
 * no fence, no map change. The owners' buckets must not take writes meanwhile.
 */
export async function relocateOwners(from: Database, to: Database, owners: string[]): Promise<void> {
  const columns = new Map<string, string[]>();
  for (const t of SHARDED_TABLES) columns.set(t.name, await columnsOf(from.raw, t.name));
  for (let i = 0; i < owners.length; i += CHUNK) {
    const part = owners.slice(i, i + CHUNK);
    await syncOwners(from, to, part, columns);
    await deleteOwners(from, part);
  }
}

/** Changes the bucket's map row under the map lock and bumps the version; returns the map before and the new version. */
async function changeMap(directory: Database, bucket: number, change: (map: ShardMap) => { shard: string; copyOn: string | null } | undefined): Promise<{ before: ShardMap; version: number | undefined }> {
  return directory.rawTransaction(async (raw) => {
    await raw.query('select pg_advisory_xact_lock($1)', [MAP_LOCK]);
    const before = await loadMap(raw);
    if (!before) throw new Error('the bucket map is not initialised: start the API once with TASK_SHARDS set');
    const next = change(before);
    if (!next) return { before, version: undefined };
    await raw.query('update shard_map set shard = $2, copy_on = $3 where bucket = $1', [bucket, next.shard, next.copyOn]);
    return { before, version: await bumpVersion(raw) };
  });
}

/**
 * Waits until every instance heard from lately has loaded map version `version` or later; with
 * `from`, only those that had loaded version `from` or later (the ones a flipped-back map concerns).
 */
async function waitForInstances(directory: Database, version: number, staleClientMs: number, timeoutMs: number, from = 0): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Instances stopped without saying so (killed) leave their row; a day later nobody needs it.
  await directory.raw.query("delete from shard_clients where seen_at < now() - interval '1 day'");
  for (;;) {
    const behind = await directory.raw.query<{ instance: string; version: string }>(
      'select instance, version::text from shard_clients where seen_at > now() - make_interval(secs => $1::float8 / 1000) and version < $2 and version >= $3',
      [staleClientMs, version, from],
    );
    if (behind.length === 0) return;
    if (Date.now() > deadline) throw new Error(`instances still route by an older map after ${timeoutMs} ms: ${behind.map((b) => `${b.instance} (v${b.version})`).join(', ')}`);
    await sleep(50);
  }
}

/** Waits until each reachable replica of the shard has replayed the primary's WAL up to now. */
async function waitForReplicas(node: ShardNode, timeoutMs: number, say: (l: string) => void): Promise<void> {
  if (node.replicas.length === 0) return;
  const [row] = await node.db.raw.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  const deadline = Date.now() + timeoutMs;
  for (const [i, replica] of node.replicas.entries()) {
    for (;;) {
      try {
        const [r] = await replica.raw.query<{ done: boolean }>('select pg_last_wal_replay_lsn() >= $1::pg_lsn as done', [row!.lsn]);
        if (r?.done) break;
      } catch (err) {
        // A replica that cannot answer is not read from (the router marks it down); it replays the copy before it is read from again.
        say(`replica ${i + 1} of ${node.name} did not answer (${(err as Error).message}); not waiting for it`);
        break;
      }
      if (Date.now() > deadline) throw new Error(`replica ${i + 1} of ${node.name} has not replayed the copy after ${timeoutMs} ms`);
      await sleep(50);
    }
  }
}

/** Waits until the source has published the owners' pending events (their order before the target's). */
async function waitForOutbox(db: Database, owners: string[], timeoutMs: number, say: (l: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await db.raw.query<{ n: number }>('select count(*)::int as n from outbox where published_at is null and user_id = any($1::uuid[])', [owners]);
    if (!row || row.n === 0) return;
    if (Date.now() > deadline) {
      say(`${row.n} event(s) of the bucket still wait in the source's outbox; its relay publishes them after the move`);
      return;
    }
    await sleep(50);
  }
}

/**
 * Puts an interrupted move of the bucket back in order: before its flip (copy_on on the map's
 * shard's side), the source holds the bucket again and the copy is deleted; after it, the
 * target takes the bucket once every instance has the map, and the source's rows are deleted.
 */
async function recover(fleet: ShardFleet, bucket: number, opts: Required<Omit<MoveOptions, 'bucket' | 'to' | 'say' | 'outboxWaitMs'>>, say: (l: string) => void): Promise<void> {
  const map = await loadMap(fleet.directory.raw);
  const copyOn = map?.copyOn[bucket];
  if (!map || !copyOn) return;
  const holder = fleet.shard(map.shard[bucket]!);
  const other = fleet.shard(copyOn);
  say(`bucket ${bucket}: finishing an interrupted move (map: ${holder.name}, copy on ${other.name})`);
  await waitForInstances(fleet.directory, map.version, opts.staleClientMs, opts.ackTimeoutMs);
  await holder.db.raw.query('insert into shard_buckets (bucket) values ($1) on conflict do nothing', [bucket]);
  await other.db.raw.query('delete from shard_buckets where bucket = $1', [bucket]);
  const owners = await ownersOn(other.db.raw, bucket);
  await sleep(opts.graceMs);
  await deleteOwners(other.db, owners);
  await changeMap(fleet.directory, bucket, (m) => ({ shard: m.shard[bucket]!, copyOn: null }));
}

export async function moveBucket(fleet: ShardFleet, options: MoveOptions): Promise<MoveReport> {
  const { bucket, to } = options;
  const say = options.say ?? (() => undefined);
  if (!Number.isInteger(bucket) || bucket < 0 || bucket >= BUCKETS) throw new Error(`--bucket: a bucket number from 0 to ${BUCKETS - 1}`);
  const opts = {
    catchUpRows: options.catchUpRows ?? 50,
    maxRounds: options.maxRounds ?? 10,
    ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
    staleClientMs: options.staleClientMs ?? 10_000,
    graceMs: options.graceMs ?? 2_000,
    settleTimeoutMs: options.settleTimeoutMs ?? 30_000,
    outboxWaitMs: options.outboxWaitMs ?? 2_000,
  };
  const target = fleet.shard(to);
  await recover(fleet, bucket, opts, say);

  // 1. Mark the move.
  const marked = await changeMap(fleet.directory, bucket, (m) => (m.shard[bucket] === to ? undefined : { shard: m.shard[bucket]!, copyOn: to }));
  const source = fleet.shard(marked.before.shard[bucket]!);
  if (marked.version === undefined) {
    say(`bucket ${bucket} is on ${to} already`);
    return { bucket, from: to, to, owners: 0, tables: {}, rounds: 0, fencedMs: 0, version: marked.before.version, noop: true };
  }
  const columns = new Map<string, string[]>();
  for (const t of SHARDED_TABLES) columns.set(t.name, await columnsOf(source.db.raw, t.name));

  try {
    // 2. Copy, then catch up.
    let rounds = 0;
    for (;;) {
      const owners = [...new Set([...(await ownersOn(source.db.raw, bucket)), ...(await ownersOn(target.db.raw, bucket))])];
      const changed = await syncOwners(source.db, target.db, owners, columns);
      rounds++;
      say(`bucket ${bucket}: round ${rounds} copied ${changed} row(s) of ${owners.length} owner(s) from ${source.name} to ${to}`);
      if (changed <= opts.catchUpRows || rounds >= opts.maxRounds) break;
    }
    // 3. Fence.
    const fencedAt = Date.now();
    await source.db.raw.query('delete from shard_buckets where bucket = $1', [bucket]);
    // 4. The rest, exact now; then verify.
    const owners = [...new Set([...(await ownersOn(source.db.raw, bucket)), ...(await ownersOn(target.db.raw, bucket))])];
    await waitForOutbox(source.db, owners, opts.outboxWaitMs, say);
    await syncOwners(source.db, target.db, owners, columns);
    const [expected, copied] = await Promise.all([checksums(source.db, owners, columns), checksums(target.db, owners, columns)]);
    for (const t of SHARDED_TABLES) {
      const a = expected[t.name]!;
      const b = copied[t.name]!;
      if (a.rows !== b.rows || a.checksum !== b.checksum) {
        throw new Error(`verification failed for ${t.name}: ${source.name} has ${a.rows} row(s) (${a.checksum}), ${to} has ${b.rows} (${b.checksum})`);
      }
    }
    await waitForReplicas(target, opts.settleTimeoutMs, say);
    // 5. Flip, wait for every instance, let the target hold the bucket.
    const flipped = await changeMap(fleet.directory, bucket, () => ({ shard: to, copyOn: source.name }));
    try {
      await waitForInstances(fleet.directory, flipped.version!, opts.staleClientMs, opts.ackTimeoutMs);
    } catch (err) {
      // Flipped back; the instances that took the flip must take this too before the undo below
      // deletes the copy they may be reading.
      const back = await changeMap(fleet.directory, bucket, () => ({ shard: source.name, copyOn: to }));
      await waitForInstances(fleet.directory, back.version!, opts.staleClientMs, opts.ackTimeoutMs, flipped.version);
      throw err;
    }
    await target.db.raw.query('insert into shard_buckets (bucket) values ($1) on conflict do nothing', [bucket]);
    const fencedMs = Date.now() - fencedAt;
    say(`bucket ${bucket}: on ${to} (map v${flipped.version}); writes were held for ${fencedMs} ms; ${owners.length} owner(s), ${expected.tasks!.rows} task(s) verified`);
    // 6. Empty the source.
    await sleep(opts.graceMs);
    await deleteOwners(source.db, owners);
    const done = await changeMap(fleet.directory, bucket, () => ({ shard: to, copyOn: null }));
    return { bucket, from: source.name, to, owners: owners.length, tables: expected, rounds, fencedMs, version: done.version! };
  } catch (err) {
    // Before the target held the bucket: undo. The source holds it again, the copy goes.
    const map = await loadMap(fleet.directory.raw);
    if (map?.shard[bucket] === source.name) {
      say(`bucket ${bucket}: the move failed (${(err as Error).message}); undoing it`);
      await source.db.raw.query('insert into shard_buckets (bucket) values ($1) on conflict do nothing', [bucket]);
      const copies = await ownersOn(target.db.raw, bucket);
      await deleteOwners(target.db, copies);
      await changeMap(fleet.directory, bucket, () => ({ shard: source.name, copyOn: null }));
    }
    throw err;
  }
}
