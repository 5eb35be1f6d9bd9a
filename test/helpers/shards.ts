// The shards of the tasks data as a test reaches them directly: a connection of the test's own to
// each shard's database (what the app wrote is checked where it lies, not through the app), and
// a move's steps done by hand (copy a bucket's rows, drop them, give the bucket to another shard).
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { bucketOf } from '../../src/infra/shards/buckets.js';
import type { ShardMap } from '../../src/infra/shards/map.js';

export type Sql = postgres.Sql;

/** A connection pool of the test's own to a database, quiet about notices. */
export const connect = (url: string, max = 2): Sql => postgres(url, { max, onnotice: () => undefined });

/** One number a query answers (its first row's `n`). */
export async function count(sql: Sql, text: string, params: (string | number | boolean | null)[] = []): Promise<number> {
  const [row] = await sql.unsafe<{ n: string | number }[]>(text, params);
  return Number(row!.n);
}

/** The columns of each table of the tasks data a bucket's rows are in (what a move copies), all but generated ones. */
export const BUCKET_TABLES: Record<string, string[]> = {
  tasks: ['user_id', 'id', 'title', 'description', 'status', 'priority', 'due_at', 'tags', 'created_at', 'updated_at', 'completed_at', 'version'],
  task_counts: ['user_id', 'tasks', 'closed'],
  task_owners: ['user_id', 'email', 'role', 'updated_at', 'deleted_at'],
};

/** Copies every row of the bucket from one shard's database to another's, as a move's copy does; returns the tasks copied. */
export async function copyBucket(from: Sql, to: Sql, bucket: number): Promise<number> {
  let copied = 0;
  for (const [table, columns] of Object.entries(BUCKET_TABLES)) {
    const rows = await from`select ${from(columns)} from ${from(table)} where owner_bucket(user_id) = ${bucket}`;
    if (rows.length > 0) await to`insert into ${to(table)} ${to(rows, columns)}`;
    if (table === 'tasks') copied = rows.length;
  }
  return copied;
}

/** Deletes every row of the bucket from one shard's database (a move's copy, or a moved bucket's source). */
export async function dropBucketRows(sql: Sql, bucket: number): Promise<void> {
  for (const table of Object.keys(BUCKET_TABLES)) await sql`delete from ${sql(table)} where owner_bucket(user_id) = ${bucket}`;
}

/** Bumps the map's version in the directory (the main shard's database); returns the new version. */
export async function bumpMapVersion(directory: Sql): Promise<number> {
  const [row] = await directory<{ version: string }[]>`update shard_map_version set version = version + 1 returning version::text as version`;
  return Number(row!.version);
}

/** A fresh owner id whose bucket the map gives to `shard` (and no move is working on). */
export function ownerOn(map: ShardMap, shard: string): string {
  for (let i = 0; i < 100_000; i++) {
    const id = randomUUID();
    const b = bucketOf(id);
    if (map.shard[b] === shard && map.copyOn[b] === null) return id;
  }
  throw new Error(`no owner found on shard ${shard}`);
}

/**
 * Runs `statement` (a lock) in a transaction of its own on the database and keeps the
 * transaction open until release() (which commits and closes the connection).
 */
export async function holdInTransaction(url: string, statement: string): Promise<{ release(): Promise<void> }> {
  const sql = connect(url, 1);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let taken!: () => void;
  const held = new Promise<void>((resolve) => (taken = resolve));
  const done = sql.begin(async (tx) => {
    await tx.unsafe("set local lock_timeout = '10s'");
    await tx.unsafe(statement);
    taken();
    await released;
  });
  try {
    await Promise.race([held, done]);
  } catch (err) {
    await sql.end();
    throw err;
  }
  return {
    async release() {
      release();
      try {
        await done;
      } finally {
        await sql.end();
      }
    },
  };
}
