// `task-api seed`: the built CLI run as a process, into this file's own databases (PostgreSQL)
// and into an embedded PGlite under a temporary DATA_DIR.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/infra/db/database.js';
import { createTestApp, type SessionBody } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { runCli } from '../helpers/process.js';

const USERS = 24;
const PER_USER = 40;
const PASSWORD = 'seed-test-password';
const ARGS = ['seed', '--users', String(USERS), '--tasks-per-user', String(PER_USER), '--prefix', 'st', '--password', PASSWORD];

interface Outcome {
  users: number;
  tasks: number;
  seconds: number;
  tasksPerSecond: number;
}

async function seedInto(url: string, args: string[]): Promise<Outcome> {
  const res = await runCli(args, { DATABASE_URL: url });
  expect(res.code, res.stderr).toBe(0);
  const lines = res.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Outcome;
}

/** md5 over every generated column of every task and user (not the salted password hash), in key order. */
async function fingerprint(sql: postgres.Sql): Promise<{ tasks: string; users: string }> {
  const [row] = await sql<{ tasks: string; users: string }[]>`
    select (select md5(string_agg(concat_ws(',', user_id, id, title, description, status, priority, due_at, tags,
                                            created_at, updated_at, completed_at, version), '|' order by user_id, id))
            from tasks) as tasks,
           (select md5(string_agg(concat_ws(',', id, email, role, name, created_at, updated_at), '|' order by id))
            from users) as users`;
  return row!;
}

const dbs: TestDatabase[] = [];
const clients: postgres.Sql[] = [];
async function freshDatabase(): Promise<{ db: TestDatabase; sql: postgres.Sql }> {
  const db = await createTestDatabase();
  dbs.push(db);
  const sql = postgres(db.url, { max: 1, onnotice: () => undefined });
  clients.push(sql);
  return { db, sql };
}

afterAll(async () => {
  for (const c of clients) await c.end({ timeout: 5 });
  for (const d of dbs) await d.drop();
});

describe('seed into PostgreSQL', () => {
  let db: TestDatabase;
  let sql: postgres.Sql;
  let first: Outcome;

  beforeAll(async () => {
    ({ db, sql } = await freshDatabase());
    first = await seedInto(db.url, [...ARGS, '--concurrency', '2']);
  });

  it('writes exactly N users and N x M tasks, M per user, and says so on stdout', async () => {
    expect(first).toMatchObject({ users: USERS, tasks: USERS * PER_USER });
    expect(first.seconds).toBeGreaterThan(0);
    const [counts] = await sql<{ users: number; tasks: number; owners: number; min: number; max: number; outbox: number }[]>`
      select (select count(*)::int from users) as users,
             (select count(*)::int from tasks) as tasks,
             (select count(distinct user_id)::int from tasks) as owners,
             (select min(n)::int from (select count(*) as n from tasks group by user_id) x) as min,
             (select max(n)::int from (select count(*) as n from tasks group by user_id) x) as max,
             (select count(*)::int from outbox) as outbox`;
    expect(counts).toEqual({ users: USERS, tasks: USERS * PER_USER, owners: USERS, min: PER_USER, max: PER_USER, outbox: 0 });
    // The other modules' copies of the accounts (which account events fill for API sign-ups).
    const [copies] = await sql<{ owners: number; recipients: number }[]>`
      select (select count(*)::int from task_owners o join users u on u.id = o.user_id and u.email = o.email) as owners,
             (select count(*)::int from notification_recipients r join users u on u.id = r.user_id and u.email = r.email) as recipients`;
    expect(copies).toEqual({ owners: USERS, recipients: USERS });
    // The per-user counts the create's cap reads (migrations/0007) match the rows.
    const off = await sql`select c.user_id from task_counts c full join (select user_id, count(*)::int as n from tasks group by user_id) t
                            using (user_id) where c.tasks is distinct from t.n`;
    expect(off).toHaveLength(0);
    const emails = await sql<{ email: string; role: string }[]>`select email, role::text from users order by email`;
    expect(new Set(emails.map((e) => e.email))).toEqual(new Set(Array.from({ length: USERS }, (_, i) => `st-${i + 1}@example.com`)));
    expect(new Set(emails.map((e) => e.role))).toEqual(new Set(['user']));
    // Statistics are current: ANALYZE ran at the end.
    const [stats] = await sql<{ analyzed: number }[]>`
      select count(*)::int as analyzed from pg_stat_user_tables where relname like 'tasks_p%' and last_analyze is not null`;
    expect(stats!.analyzed).toBeGreaterThan(0);
  });

  it('has a realistic spread: every status and priority, completedAt iff done, due dates, tags, searchable text', async () => {
    const statuses = await sql<{ v: string }[]>`select distinct status::text as v from tasks order by 1`;
    expect(statuses.map((s) => s.v)).toEqual(['done', 'in_progress', 'todo']);
    const priorities = await sql<{ v: string }[]>`select distinct priority::text as v from tasks order by 1`;
    expect(priorities.map((s) => s.v)).toEqual(['high', 'low', 'medium', 'urgent']);
    const [c] = await sql<Record<string, number>[]>`
      select count(*) filter (where (status = 'done') <> (completed_at is not null))::int as completed_mismatch,
             count(*) filter (where completed_at is not null and completed_at <> updated_at)::int as completed_not_updated,
             count(*) filter (where updated_at < created_at)::int as updated_before_created,
             count(*) filter (where due_at is null)::int as undated,
             count(*) filter (where cardinality(tags) = 0)::int as untagged,
             count(*) filter (where cardinality(tags) > 3)::int as over_tagged,
             count(*) filter (where description is null)::int as no_description,
             count(*) filter (where substr(id::text, 15, 1) <> '7'
                               or substr(replace(id::text, '-', ''), 1, 12) <> lpad(to_hex((extract(epoch from created_at) * 1000)::bigint), 12, '0'))::int as not_v7_of_created,
             count(*) filter (where version < 1)::int as bad_version,
             count(*) filter (where search @@ websearch_to_tsquery('english', 'deadline'))::int as deadline_matches
      from tasks`;
    const total = USERS * PER_USER;
    expect(c).toMatchObject({ completed_mismatch: 0, completed_not_updated: 0, updated_before_created: 0, over_tagged: 0, not_v7_of_created: 0, bad_version: 0 });
    for (const k of ['undated', 'untagged', 'no_description', 'deadline_matches'] as const) {
      expect(c![k], k).toBeGreaterThan(0);
      expect(c![k], k).toBeLessThan(total);
    }
  });

  it('every seeded user logs in through the API with --password and sees their tasks', async () => {
    const app = await createTestApp({ env: { DATABASE_URL: db.url } });
    try {
      for (const n of [1, USERS]) {
        const login = await app.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: `st-${n}@example.com`, password: PASSWORD } });
        expect(login.statusCode, login.body).toBe(200);
        const { accessToken } = login.json<SessionBody>();
        const list = await app.app.inject({ method: 'GET', url: '/v1/tasks?limit=100', headers: { authorization: `Bearer ${accessToken}` } });
        expect(list.statusCode).toBe(200);
        expect(list.json<{ data: unknown[] }>().data).toHaveLength(PER_USER);
      }
      const wrong = await app.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'st-1@example.com', password: 'not-the-password' } });
      expect(wrong.statusCode).toBe(401);
    } finally {
      await app.close();
    }
  });

  it('is additive: the same arguments again add nothing, another prefix adds its own users', async () => {
    const before = await fingerprint(sql);
    expect(await seedInto(db.url, ARGS)).toMatchObject({ users: 0, tasks: 0 });
    expect(await fingerprint(sql)).toEqual(before);
    expect(await seedInto(db.url, ['seed', '--users', '5', '--tasks-per-user', '3', '--prefix', 'other'])).toMatchObject({ users: 5, tasks: 15 });
    const [counts] = await sql<{ users: number; tasks: number }[]>`
      select (select count(*)::int from users) as users, (select count(*)::int from tasks) as tasks`;
    expect(counts).toEqual({ users: USERS + 5, tasks: USERS * PER_USER + 15 });
  });
});

describe('seed is deterministic', () => {
  it('the same arguments give the same rows whatever the concurrency; another --seed gives others', async () => {
    const [a, b, c] = await Promise.all([freshDatabase(), freshDatabase(), freshDatabase()]);
    await Promise.all([
      seedInto(a.db.url, [...ARGS, '--seed', '7', '--concurrency', '1']),
      seedInto(b.db.url, [...ARGS, '--seed', '7', '--concurrency', '3']),
      seedInto(c.db.url, [...ARGS, '--seed', '8', '--concurrency', '1']),
    ]);
    const [fa, fb, fc] = await Promise.all([fingerprint(a.sql), fingerprint(b.sql), fingerprint(c.sql)]);
    expect(fa.tasks).toMatch(/^[0-9a-f]{32}$/);
    expect(fb).toEqual(fa);
    expect(fc.tasks).not.toBe(fa.tasks);
    expect(fc.users).not.toBe(fa.users);
  });
});

describe.concurrent('seed arguments', () => {
  const cases: [string, string[]][] = [
    ['--users', ['--tasks-per-user', '1']],
    ['--users', ['--users', '0', '--tasks-per-user', '1']],
    ['--users', ['--users', 'ten', '--tasks-per-user', '1']],
    ['--tasks-per-user', ['--users', '1']],
    ['--tasks-per-user', ['--users', '1', '--tasks-per-user', '-1']],
    ['--seed', ['--users', '1', '--tasks-per-user', '1', '--seed', '1.5']],
    ['--prefix', ['--users', '1', '--tasks-per-user', '1', '--prefix', 'Bad_Prefix']],
    ['--password', ['--users', '1', '--tasks-per-user', '1', '--password', 'short']],
    ['--concurrency', ['--users', '1', '--tasks-per-user', '1', '--concurrency', '0']],
    ['--bogus', ['--users', '1', '--tasks-per-user', '1', '--bogus', '3']],
  ];
  for (const [flag, args] of cases) {
    it(`${args.join(' ')}: exit 2 naming ${flag}`, async () => {
      // DATA_DIR points nowhere useful: nothing may be opened before the arguments are checked.
      const res = await runCli(['seed', ...args], { DATA_DIR: '/nonexistent/seed-test' });
      expect(res.code).toBe(2);
      expect(res.stderr).toContain(flag);
      expect(res.stderr).toContain('usage: task-api seed');
      expect(res.stdout).toBe('');
    });
  }
});

describe('seed into the embedded PGlite', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'task-api-seed-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('migrates an empty DATA_DIR, seeds on one connection, and a re-run adds nothing', async () => {
    const args = ['seed', '--users', '3', '--tasks-per-user', '7', '--concurrency', '4'];
    const first = await runCli(args, { DATA_DIR: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('concurrency 1');
    expect(JSON.parse(first.stdout)).toMatchObject({ users: 3, tasks: 21 });
    const again = await runCli(args, { DATA_DIR: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ users: 0, tasks: 0 });

    const database = await openDatabase({ url: undefined, poolMax: 1, prepare: false, dataDir: dir });
    try {
      const [row] = await database.raw.query<{ users: number; tasks: number; done_ok: boolean }>(
        `select (select count(*)::int from users) as users, (select count(*)::int from tasks) as tasks,
                (select bool_and((status = 'done') = (completed_at is not null)) from tasks) as done_ok`,
      );
      expect(row).toEqual({ users: 3, tasks: 21, done_ok: true });
    } finally {
      await database.close();
    }
  });
});

describe('seed into a sharded deployment (TASK_SHARDS)', () => {
  it("makes the bucket map, then puts each user's tasks on the shard of its bucket and nowhere else; the API serves them", async () => {
    const [main, s2, s3] = [await freshDatabase(), await freshDatabase(), await freshDatabase()];
    const env = { DATABASE_URL: main.db.url, TASK_SHARDS: 's2,s3', SHARD_S2_URL: s2.db.url, SHARD_S3_URL: s3.db.url };
    const res = await runCli([...ARGS, '--concurrency', '2'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout.trim())).toMatchObject({ users: USERS, tasks: USERS * PER_USER });
    const shards = { main: main.sql, s2: s2.sql, s3: s3.sql };
    const map = new Map((await main.sql<{ bucket: number; shard: string }[]>`select bucket, shard from shard_map`).map((r) => [r.bucket, r.shard]));
    expect(map.size).toBe(1024);
    const { bucketOf } = await import('../../src/infra/shards/buckets.js');
    const users = await main.sql<{ id: string }[]>`select id::text from users`;
    let total = 0;
    for (const [name, sql] of Object.entries(shards)) {
      const rows = await sql<{ user_id: string; n: number; counted: number | null }[]>`
        select t.user_id::text, count(*)::int as n, max(c.tasks) as counted
        from tasks t left join task_counts c using (user_id) group by t.user_id`;
      for (const r of rows) {
        expect(map.get(bucketOf(r.user_id)), r.user_id).toBe(name);
        expect(r).toMatchObject({ n: PER_USER, counted: PER_USER });
        total += r.n;
      }
      // The owners' copies travel with them.
      const owners = await sql<{ user_id: string }[]>`select user_id::text from task_owners`;
      for (const o of owners) expect(map.get(bucketOf(o.user_id))).toBe(name);
    }
    expect(total).toBe(USERS * PER_USER);
    // More than one shard holds tasks (24 users over 3 evenly spread shards).
    const holding = await Promise.all(Object.values(shards).map(async (sql) => (await sql<{ n: number }[]>`select count(*)::int as n from tasks`)[0]!.n));
    expect(holding.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    // A seeded user signs in and lists their tasks through the sharded API.
    const t = await createTestApp({ env });
    try {
      const login = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'st-7@example.com', password: PASSWORD } });
      expect(login.statusCode, login.body).toBe(200);
      const token = login.json<SessionBody>().accessToken;
      const list = await t.app.inject({ method: 'GET', url: '/v1/tasks?limit=100', headers: { authorization: `Bearer ${token}` } });
      expect(list.json<{ data: unknown[] }>().data).toHaveLength(PER_USER);
      expect(users.length).toBe(USERS);
    } finally {
      await t.close();
    }
  });
});
