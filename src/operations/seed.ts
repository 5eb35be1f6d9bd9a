// `task-api seed`: fills the database with generated users and tasks for benchmarks and demos.
//
// Users are inserted by one INSERT ... SELECT over generate_series with ids md5(prefix:seed:n)
// and one password hash (the app's argon2id, computed once), so every seeded user can log in.
// Tasks are generated server-side by INSERT ... SELECT FROM generate_series, in chunks of about
// CHUNK_ROWS rows that each write whole users, run on --concurrency connections. tasks is
// PARTITION BY HASH (user_id): users are grouped by the partition their id hashes to
// (satisfies_hash_partition, with each partition's own modulus and remainder read from the
// catalogue), and each chunk inserts straight into that partition table, keeping every statement
// inside one partition's indexes. The gain over routing through the parent is small, since a row
// inserted into a partition still has its partition constraint (the same hash) checked: on 1M
// tasks (1,000 users x 1,000, 2 connections, 2 vCPUs) 27.2 s direct against 26.3 s via the parent
// on a quiet machine, 51-55 s against 67-79 s on a loaded one; direct is kept.
//
// Deterministic: the chunk plan depends only on (users, tasks per user, prefix, seed, the
// partitioning), never on --concurrency, and each chunk calls setseed() with a value derived from
// (seed, chunk number) in the transaction that inserts it, so the same arguments produce the same
// rows. Re-runnable: users go in with ON CONFLICT DO NOTHING, and a chunk only writes users of
// this (prefix, seed) that exist and have no task yet (the random values of the whole chunk are
// drawn first either way, so a resumed run writes the rows a fresh one would have).
//
// Bulk load: no outbox events are written for seeded tasks, and no caches are touched.
//
// Sharded (TASK_SHARDS): the rows are generated on the main shard as above, then each seeded
// owner's rows (tasks, task_counts, task_owners) are moved to the shard the bucket map gives its
// bucket (src/infra/shards/move.ts relocateOwners). The accounts stay in the directory.
import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import type { Database, RawSql } from '../infra/db/database.js';
import { migrate } from '../infra/db/migrate.js';
import type { ShardFleet } from '../infra/shards/fleet.js';
import { parseSeedArgs, SEED_USAGE, SeedUsageError, type SeedOptions } from './seed-args.js';

const CHUNK_ROWS = 50_000;

/** The id of seeded user n, in SQL ($prefix and $seed are text parameters). */
const userIdSql = (prefix: string, seed: string, n: string) => `md5(${prefix} || ':' || ${seed} || ':' || ${n})::uuid`;

// $1 prefix, $2 seed (text), $3 N: sets task_counts of the seeded users from their rows.
const RECOUNT_TASKS = `
INSERT INTO task_counts (user_id, tasks)
SELECT t.user_id, count(*)::int
FROM generate_series(1, $3::int) AS n
JOIN tasks t ON t.user_id = ${userIdSql('$1::text', '$2::text', 'n::text')}
GROUP BY t.user_id
ON CONFLICT (user_id) DO UPDATE SET tasks = excluded.tasks`;

// $1 prefix, $2 seed (text), $3 N, $4 password hash. Created over December 2022, before any task.
const INSERT_USERS = `
WITH ins AS (
  INSERT INTO users (id, email, password_hash, role, name, created_at, updated_at)
  SELECT ${userIdSql('$1::text', '$2::text', 'n::text')},
         $1::text || '-' || n || '@example.com',
         $4::text,
         'user'::user_role,
         (ARRAY['Alice','Bob','Carol','Dave','Erin','Frank','Grace','Heidi','Ivan','Judy'])[1 + n % 10] || ' ' ||
         (ARRAY['Smith','Jones','Brown','Taylor','Wilson','Davies','Evans','Thomas','Roberts','Walker'])[1 + (n / 10) % 10],
         timestamptz '2022-12-01 00:00Z' + (n % 44640) * interval '1 minute',
         timestamptz '2022-12-01 00:00Z' + (n % 44640) * interval '1 minute'
  FROM generate_series(1, $3::int) AS n
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT count(*)::int AS n FROM ins`;

// $1 prefix, $2 seed (text), $3 N: the tasks and notifications modules' copies of the seeded
// accounts, which the account events fill for accounts made through the API (a bulk load writes
// no events). For the monolith's one database; a split deployment seeds through the API.
const COPY_ACCOUNTS = `
WITH seeded AS (
  SELECT u.id, u.email, u.role::text AS role, u.updated_at
  FROM generate_series(1, $3::int) AS n
  JOIN users u ON u.id = ${userIdSql('$1::text', '$2::text', 'n::text')}
), owners AS (
  INSERT INTO task_owners (user_id, email, role, updated_at)
  SELECT id, email, role, updated_at FROM seeded
  ON CONFLICT (user_id) DO NOTHING
)
INSERT INTO notification_recipients (user_id, email, updated_at)
SELECT id, email, updated_at FROM seeded
ON CONFLICT (user_id) DO NOTHING`;

/**
 * The random draws a generated task is made of, in the order they are drawn: r1..r6 decide status,
 * priority, due date, title and description, version; tk/ta/ts pick its tags; the rest are words.
 * Shared with the EXPLAIN test's generator (test/system/tasks.explain.test.ts).
 */
export const RANDOM_DRAWS = `
random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6,
floor(random() * 4)::int AS tk, floor(random() * 12)::int AS ta, 1 + floor(random() * 5)::int AS ts,
ARRAY['work','home','errand','finance','health','reading','shopping','travel','family','garden','school','backlog'] AS tv,
(ARRAY['write','review','call','fix','plan','buy','email','schedule','prepare','clean','book','pay'])[1 + floor(random() * 12)::int] AS verb,
(ARRAY['update','check','discuss','sign','send','file','print','renew'])[1 + floor(random() * 8)::int] AS verb2,
(ARRAY['report','invoice','dentist','budget','groceries','presentation','car','garden','taxes','meeting',
       'insurance','passport','flights','hotel','newsletter','roadmap','contract','birthday','laptop','kitchen',
       'proposal','slides','rent','gym','library','package','visa','interview','review','backup'])[1 + floor(random() * 30)::int] AS noun,
(ARRAY['receipt','form','agenda','notes','quote','ticket','draft','summary','checklist','estimate'])[1 + floor(random() * 10)::int] AS noun2,
(ARRAY['Alice','Bob','Carol','Dave','Erin','Frank','Grace','Heidi','the team','mom'])[1 + floor(random() * 10)::int] AS person`;

/**
 * id, title, description, status, priority, due_at, tags of a generated task, from the draws above
 * (as `s`) with s.created and an md5 hex s.h: the id is a UUIDv7 of created_at.
 */
export const TASK_COLUMNS_FROM_DRAWS = `
(lpad(to_hex((extract(epoch FROM s.created) * 1000)::bigint), 12, '0') || '7' || substr(s.h, 1, 3) || '8' || substr(s.h, 4, 15))::uuid,
initcap(s.verb) || ' ' || s.noun || CASE WHEN s.r4 < 0.3 THEN ' for ' || s.person ELSE '' END,
CASE WHEN s.r5 < 0.4 THEN NULL
     ELSE 'Remember to ' || s.verb2 || ' the ' || s.noun2 || ' with ' || s.person || ' before the ' || s.noun || ' deadline.' END,
(CASE WHEN s.r1 < 0.45 THEN 'todo' WHEN s.r1 < 0.55 THEN 'in_progress' ELSE 'done' END)::task_status,
(CASE WHEN s.r2 < 0.25 THEN 'low' WHEN s.r2 < 0.70 THEN 'medium' WHEN s.r2 < 0.90 THEN 'high' ELSE 'urgent' END)::task_priority,
CASE WHEN s.r3 < 0.5 THEN NULL ELSE date_trunc('minute', s.created + (s.r3 * 120 - 70) * interval '1 day') END,
(ARRAY[s.tv[s.ta + 1], s.tv[(s.ta + s.ts) % 12 + 1], s.tv[(s.ta + 2 * s.ts) % 12 + 1]])[1:s.tk]`;

/**
 * One chunk into one table: $1 user numbers (int[]), $2 tasks per user, $3 prefix, $4 seed (text).
 * The inner query draws every random value of the chunk in a fixed order (OFFSET 0 keeps them
 * evaluated once per row, before the filter); only users of this seed that exist and have no
 * task yet are written. Task created_at is spread over 2023-2024, ids are UUIDv7 built from it
 * (as src/shared/ids.ts makes them), status mostly todo/done with completed_at iff done,
 * priority mostly medium, half with a due date, 0-3 distinct tags of 12, and titles and
 * descriptions from small vocabularies so full-text search has matches.
 */
const insertTasksSql = (table: string) => `
WITH chunk AS (
  SELECT n, ${userIdSql('$3::text', '$4::text', 'n::text')} AS uid FROM unnest($1::int[]) WITH ORDINALITY AS x(n, o) ORDER BY o
), eligible AS (
  SELECT c.uid FROM chunk c JOIN users u ON u.id = c.uid
  WHERE NOT EXISTS (SELECT 1 FROM ${table} t WHERE t.user_id = c.uid)
), ins AS (
  INSERT INTO ${table} (user_id, id, title, description, status, priority, due_at, tags, created_at, updated_at, completed_at, version)
  SELECT s.uid,
         ${TASK_COLUMNS_FROM_DRAWS},
         s.created,
         s.updated,
         CASE WHEN s.r1 >= 0.55 THEN s.updated END,
         CASE WHEN s.updated = s.created THEN 1 ELSE 2 + floor(s.r6 * 3)::int END
  FROM (
    SELECT g.uid, g.created,
           date_trunc('milliseconds', g.created + CASE WHEN g.ru < 0.6 THEN g.rd * interval '20 days' ELSE interval '0' END) AS updated,
           g.h, g.r1, g.r2, g.r3, g.r4, g.r5, g.r6, g.tk, g.ta, g.ts, g.tv, g.verb, g.verb2, g.noun, g.noun2, g.person
    FROM (
      SELECT c.uid,
             date_trunc('milliseconds', timestamptz '2023-01-01 00:00Z' + random() * interval '730 days') AS created,
             random() AS ru, random() AS rd,
             md5(random()::text) AS h,
             ${RANDOM_DRAWS}
      -- The lateral reference keeps the users outside: rows come user by user, in chunk order.
      FROM chunk c CROSS JOIN LATERAL generate_series(1 + 0 * c.n, $2::int) AS i
      OFFSET 0 -- every random() above is drawn once per row, in this order, whatever is filtered out below
    ) AS g
  ) AS s
  WHERE s.uid IN (SELECT uid FROM eligible)
  RETURNING 1
)
SELECT count(*)::int AS n FROM ins`;

interface Partition {
  table: string;
  modulus: number;
  remainder: number;
}

/** The partitions of tasks with their hash bounds, from pg_inherits (empty when tasks is not partitioned). */
async function taskPartitions(raw: RawSql): Promise<Partition[]> {
  const rows = await raw.query<{ table: string; bound: string }>(
    `SELECT c.oid::regclass::text AS "table", pg_get_expr(c.relpartbound, c.oid) AS bound
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'tasks'::regclass`,
  );
  const parts = rows.map((r) => {
    const m = /modulus (\d+), remainder (\d+)/i.exec(r.bound);
    if (!m) throw new Error(`seed: partition ${r.table} is not a hash partition (${r.bound})`);
    return { table: r.table, modulus: Number(m[1]), remainder: Number(m[2]) };
  });
  return parts.sort((a, b) => a.modulus - b.modulus || a.remainder - b.remainder);
}

interface Chunk {
  /** Position in the plan: what setseed() is derived from. */
  index: number;
  table: string;
  users: number[];
}

/**
 * The chunks: for each partition (in bound order) its users in number order, cut into runs of
 * ceil(CHUNK_ROWS / M) users. Depends only on N, M, prefix, seed and the partitioning.
 */
async function planChunks(raw: RawSql, parts: Partition[], opts: SeedOptions): Promise<Chunk[]> {
  const perChunk = Math.max(1, Math.floor(CHUNK_ROWS / Math.max(1, opts.tasksPerUser)));
  const groups: { table: string; users: number[] }[] = [];
  if (parts.length === 0) {
    groups.push({ table: 'tasks', users: Array.from({ length: opts.users }, (_, i) => i + 1) });
  } else {
    for (const p of parts) {
      const [row] = await raw.query<{ users: number[] | null }>(
        `SELECT array_agg(n ORDER BY n) AS users FROM generate_series(1, $1::int) AS n
         WHERE satisfies_hash_partition('tasks'::regclass, $2::int, $3::int, ${userIdSql('$4::text', '$5::text', 'n::text')})`,
        [opts.users, p.modulus, p.remainder, opts.prefix, String(opts.seed)],
      );
      groups.push({ table: p.table, users: row?.users ?? [] });
    }
  }
  const chunks: Chunk[] = [];
  for (const g of groups) {
    for (let i = 0; i < g.users.length; i += perChunk) {
      chunks.push({ index: chunks.length, table: g.table, users: g.users.slice(i, i + perChunk) });
    }
  }
  return chunks;
}

/** setseed() argument in [-1, 1] for a chunk: from a hash of (seed, chunk number). */
export function chunkSeed(seed: number, chunk: number): number {
  const h = createHash('sha256').update(`task-api seed ${seed} chunk ${chunk}`).digest();
  return (h.readUInt32BE(0) / 0xffffffff) * 2 - 1;
}

/** Work order: round-robin over the partitions, so that parallel chunks tend to write different tables. */
function interleave(chunks: Chunk[]): Chunk[] {
  const byTable = new Map<string, Chunk[]>();
  for (const c of chunks) byTable.set(c.table, [...(byTable.get(c.table) ?? []), c]);
  const queues = [...byTable.values()];
  const out: Chunk[] = [];
  for (let i = 0; out.length < chunks.length; i++) for (const q of queues) if (i < q.length) out.push(q[i]!);
  return out;
}

/** Progress on stderr: redrawn in place on a terminal, otherwise one line per 10 %. */
export class Progress {
  private readonly started = Date.now();
  private done = 0;
  private lastDecile = -1;
  private lastDraw = 0;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly tty = Boolean(process.stderr.isTTY),
  ) {}

  add(rows: number): void {
    this.done += rows;
    const decile = this.total === 0 ? 10 : Math.floor((this.done / this.total) * 10);
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw >= 100 || this.done >= this.total) {
        this.lastDraw = now;
        this.out.write(`\r${this.line()}\x1b[K`);
      }
    } else if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.out.write(`${this.line()}\n`);
    }
  }

  finish(): void {
    if (this.tty) this.out.write(`\r${this.line()}\x1b[K\n`);
  }

  private line(): string {
    const seconds = (Date.now() - this.started) / 1000;
    const rate = seconds > 0 ? this.done / seconds : 0;
    const fraction = this.total === 0 ? 1 : this.done / this.total;
    const width = 30;
    const filled = Math.round(fraction * width);
    const eta = rate > 0 ? (this.total - this.done) / rate : NaN;
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    return (
      `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ` +
      `${fmt(this.done)}/${fmt(this.total)} tasks  ${fmt(rate)} rows/s  ` +
      `ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)}s` : '?'}`
    );
  }
}

export interface SeedResult {
  users: number;
  tasks: number;
  seconds: number;
  tasksPerSecond: number;
}

/** Seeds an open, migrated database. */
export async function seed(database: Database, opts: SeedOptions, log: (line: string) => void = () => undefined): Promise<SeedResult> {
  const started = Date.now();
  const concurrency = database.kind === 'pglite' ? 1 : opts.concurrency;
  const { hashPassword } = await import('../infra/passwords.js');
  const passwordHash = await hashPassword(opts.password);

  const [users] = await database.raw.query<{ n: number }>(INSERT_USERS, [opts.prefix, String(opts.seed), opts.users, passwordHash]);
  await database.raw.query(COPY_ACCOUNTS, [opts.prefix, String(opts.seed), opts.users]);
  const usersInserted = users?.n ?? 0;
  log(`seed: ${usersInserted} of ${opts.users} users inserted (prefix ${opts.prefix}, seed ${opts.seed})`);

  let tasksInserted = 0;
  if (opts.tasksPerUser > 0) {
    const parts = await taskPartitions(database.raw);
    const chunks = await planChunks(database.raw, parts, opts);
    log(
      `seed: ${opts.users * opts.tasksPerUser} tasks in ${chunks.length} chunks over ${parts.length || 1} ` +
        `table${parts.length === 1 ? '' : 's'}, ${concurrency} connection${concurrency === 1 ? '' : 's'} (no outbox events)`,
    );
    const progress = new Progress(opts.users * opts.tasksPerUser);
    const queue = interleave(chunks);
    let next = 0;
    const worker = async () => {
      for (let c = queue[next++]; c !== undefined; c = queue[next++]) {
        const chunk = c;
        const inserted = await database.rawTransaction(async (tx) => {
          // A lost commit on a crash only means a chunk to seed again, which a re-run does. JIT
          // compilation costs more than it saves on these short, expression-heavy statements.
          await tx.query("SELECT set_config('synchronous_commit', 'off', true), set_config('jit', 'off', true)");
          await tx.query('SELECT setseed($1::float8)', [chunkSeed(opts.seed, chunk.index)]);
          const [row] = await tx.query<{ n: number }>(insertTasksSql(chunk.table), [
            chunk.users,
            opts.tasksPerUser,
            opts.prefix,
            String(opts.seed),
          ]);
          return row?.n ?? 0;
        });
        tasksInserted += inserted;
        progress.add(chunk.users.length * opts.tasksPerUser);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, queue.length)) }, worker));
    progress.finish();
    // The per-user counts the repository keeps on every create and delete (migrations/0007).
    await database.raw.query(RECOUNT_TASKS, [opts.prefix, String(opts.seed), opts.users]);
  }
  log('seed: ANALYZE users, tasks');
  await database.raw.script('ANALYZE users; ANALYZE tasks');
  const seconds = (Date.now() - started) / 1000;
  return {
    users: usersInserted,
    tasks: tasksInserted,
    seconds: Math.round(seconds * 100) / 100,
    tasksPerSecond: seconds > 0 ? Math.round(tasksInserted / seconds) : 0,
  };
}

/** `task-api seed ...`: returns the exit code (2 with the usage on bad arguments). */
export async function seedCommand(args: string[], config: Config): Promise<number> {
  let opts: SeedOptions;
  try {
    opts = parseSeedArgs(args);
  } catch (err) {
    if (!(err instanceof SeedUsageError)) throw err;
    process.stderr.write(`seed: ${err.message}\n${SEED_USAGE}\n`);
    return 2;
  }
  const started = Date.now();
  const { openDatabase } = await import('../infra/db/database.js');
  const poolMax = config.database.url ? opts.concurrency + 1 : 1;
  const database = await openDatabase({ ...config.database, poolMax, dataDir: config.dataDir });
  try {
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const applied = await migrate(database, { taskPartitions: config.database.taskPartitions });
    if (applied.length > 0) log(`seed: applied migrations ${applied.join(', ')}`);
    if (database.kind === 'pglite' && opts.concurrency > 1) log('seed: embedded PGlite has one connection; concurrency 1');
    // Sharded (TASK_SHARDS): the map first (spread over every shard when main holds no task yet),
    // then the rows generated on main, then each owner's rows moved to the shard the map gives it.
    const fleet = config.shards.extra.length > 0 ? await (await import('../infra/shards/fleet.js')).openFleet(config) : undefined;
    try {
      if (fleet) await prepareShards(fleet, config.database.taskPartitions);
      const result = await seed(database, opts, log);
      if (fleet) await placeOnShards(fleet, opts, log);
      const seconds = Math.round((Date.now() - started) / 10) / 100;
      const out = { ...result, seconds, tasksPerSecond: seconds > 0 ? Math.round(result.tasks / seconds) : 0 };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return 0;
    } finally {
      await fleet?.close();
    }
  } finally {
    await database.close();
  }
}

/** Every shard migrated, and the bucket map made if this is the deployment's first start. */
async function prepareShards(fleet: ShardFleet, taskPartitions: number): Promise<void> {
  const { initialiseMap } = await import('../infra/shards/map.js');
  for (const node of fleet.shards.values()) await migrate(node.db, { taskPartitions });
  const main = fleet.directory;
  await initialiseMap(main, [...fleet.shards.keys()], async () => {
    const [row] = await main.raw.query<{ any: boolean }>('select exists (select 1 from tasks) as any');
    return row?.any === true;
  });
}

/** The seeded owners' rows, generated on main, moved to the shard of each owner's bucket. */
async function placeOnShards(fleet: ShardFleet, opts: SeedOptions, log: (line: string) => void): Promise<void> {
  const { bucketOf, MAIN_SHARD } = await import('../infra/shards/buckets.js');
  const { loadMap } = await import('../infra/shards/map.js');
  const { relocateOwners } = await import('../infra/shards/move.js');
  const map = await loadMap(fleet.directory.raw);
  if (!map) throw new Error('the bucket map is missing');
  const ids = await fleet.directory.raw.query<{ id: string }>(
    `select ${userIdSql('$1::text', '$2::text', 'n::text')}::text as id from generate_series(1, $3::int) as n`,
    [opts.prefix, String(opts.seed), opts.users],
  );
  const byShard = new Map<string, string[]>();
  for (const { id } of ids) {
    const shard = map.shard[bucketOf(id)]!;
    if (shard !== MAIN_SHARD) byShard.set(shard, [...(byShard.get(shard) ?? []), id]);
  }
  for (const [name, owners] of byShard) {
    await relocateOwners(fleet.directory, fleet.shard(name).db, owners);
    log(`seed: ${owners.length} users' tasks placed on shard ${name}`);
  }
}

