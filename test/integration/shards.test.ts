// The tasks data sharded by owner over three real databases (src/infra/shards/): the app's own
// test database as `main` (also the directory that keeps the bucket map) and two more, s2 and s3.
// What each shard holds is checked in its database directly. Checked: JS and SQL agree on an
// owner's bucket; a fresh deployment spreads the buckets and each shard holds exactly its own;
// every write lands on its owner's shard and nowhere else; the whole API scenario; the admin's
// list across shards, paged, sees every task once in order (ties across shards too), and leaves a
// move's copy out; a shard that does not answer fails that list with a 503 and nothing else; a
// fenced bucket refuses writes and changes nothing; a map flipped under the process is followed
// on the next write; an unsharded process refuses a sharded map; an account's deletion empties
// its shard.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketOf, BUCKETS } from '../../src/infra/shards/buckets.js';
import type { ShardMap } from '../../src/infra/shards/map.js';
import { StartupError } from '../../src/shared/errors.js';
import { uuidv7 } from '../../src/shared/ids.js';
import { as, createTestApp, register, registerAdmin, type Injector, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody, TaskBody } from '../helpers/bodies.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { runScenario } from '../helpers/scenario.js';
import { bumpMapVersion, connect, copyBucket, count, dropBucketRows, holdInTransaction, ownerOn, type Sql } from '../helpers/shards.js';

const SHARDS = ['main', 's2', 's3'] as const;
type ShardName = (typeof SHARDS)[number];

interface OwnedTaskBody extends TaskBody {
  owner: { id: string; email: string | null; role: string | null };
}

/** A user registered through the API, the shard the map gave them, and their tasks' ids. */
interface User {
  session: SessionBody;
  id: string;
  shard: ShardName;
  tasks: string[];
}

let t: TestApp;
let db2: TestDatabase | undefined;
let db3: TestDatabase | undefined;
/** The test's own connection to each shard's database. */
let sql: Record<ShardName, Sql> | undefined;
let admin: SessionBody;
const users: User[] = [];

/** The environment of a process that knows the three shards. The map is polled once a minute: each test reloads it when it means to. */
const shardEnv = (): Record<string, string> => ({ TASK_SHARDS: 's2,s3', SHARD_S2_URL: db2!.url, SHARD_S3_URL: db3!.url, SHARD_MAP_REFRESH_MS: '60000' });
const on = (shard: ShardName): Sql => sql![shard];
const theMap = (): ShardMap => t.shards.map()!;
const shardOf = (owner: string) => theMap().shard[bucketOf(owner)] as ShardName;
const req = (s: SessionBody, app: Injector = t.app) => as(app, s.accessToken);

beforeAll(async () => {
  [db2, db3] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  t = await createTestApp({ env: shardEnv() });
  sql = { main: connect(t.testDb!.url), s2: connect(db2.url), s3: connect(db3.url) };
  admin = await registerAdmin(t);
});

afterAll(async () => {
  if (sql) await Promise.all(Object.values(sql).map((s) => s.end({ timeout: 5 })));
  await t?.close();
  await Promise.all([db2?.drop(), db3?.drop()]);
});

async function createTask(s: SessionBody, title: string, app: Injector = t.app): Promise<TaskBody> {
  const res = await req(s, app)({ method: 'POST', url: '/v1/tasks', payload: { title } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<TaskBody>();
}

/** The admin's list across every shard, walked page by page (7 a page) until it ends. */
async function walkAdminList(app: Injector = t.app): Promise<OwnedTaskBody[]> {
  const out: OwnedTaskBody[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 500; page++) {
    const res = await req(admin, app)({ method: 'GET', url: `/v1/admin/tasks?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}` });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<PageBody<OwnedTaskBody>>();
    expect(body.data.length).toBeLessThanOrEqual(7);
    out.push(...body.data);
    if (body.nextCursor === null) return out;
    expect(body.data).toHaveLength(7);
    cursor = body.nextCursor;
  }
  throw new Error('the walk of the admin list did not end');
}

interface Row {
  shard: ShardName;
  id: string;
  userId: string;
  at: bigint;
}

/** Every task of every shard's database, as the admin's list orders them: createdAt descending, then id descending. */
async function everyTask(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const shard of SHARDS) {
    const found = await on(shard)<{ id: string; userId: string; at: string }[]>`
      select id::text as id, user_id::text as "userId", (extract(epoch from created_at) * 1000)::bigint::text as at from tasks`;
    rows.push(...found.map((r) => ({ shard, id: r.id, userId: r.userId, at: BigInt(r.at) })));
  }
  return rows.sort((a, b) => (a.at !== b.at ? (a.at > b.at ? -1 : 1) : a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** The ids of a page of tasks, sorted. */
const sortedIds = (res: { json<T>(): T }) =>
  res
    .json<PageBody>()
    .data.map((x) => x.id)
    .sort();
const listed = (walk: OwnedTaskBody[]) => walk.map((x) => `${x.id}@${x.owner.id}`);
const expected = (rows: Row[]) => rows.map((r) => `${r.id}@${r.userId}`);

/** One user's rows on one shard: tasks, count row, owner row, task events. */
async function rowsOf(shard: ShardName, userId: string) {
  const db = on(shard);
  return {
    tasks: (await db<{ id: string; title: string; version: number }[]>`select id::text as id, title, version from tasks where user_id = ${userId} order by id`).map((r) => ({ ...r })),
    counts: (await db<{ tasks: number; closed: boolean }[]>`select tasks, closed from task_counts where user_id = ${userId}`).map((r) => ({ ...r })),
    owners: (await db<{ email: string; deleted: boolean }[]>`select email, deleted_at is not null as deleted from task_owners where user_id = ${userId}`).map((r) => ({ ...r })),
    events: (await db<{ type: string; id: string }[]>`select type, aggregate_id::text as id from outbox where user_id = ${userId} and type like 'task.%' order by created_at, id`).map(
      (r) => ({ ...r }),
    ),
  };
}

function expectProblem503(res: { statusCode: number; headers: Record<string, unknown>; body: string; json<T>(): T }): ProblemBody {
  expect(res.statusCode, res.body).toBe(503);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.headers['retry-after']).toBe('1');
  return res.json<ProblemBody>();
}

describe('the tasks data sharded by owner over three databases', () => {
  it("JS bucketOf and SQL owner_bucket agree on every owner's bucket", async () => {
    const ids = [...Array.from({ length: 200 }, () => uuidv7()), ...Array.from({ length: 200 }, () => randomUUID())];
    const rows = await on('main')<{ id: string; bucket: number }[]>`select x::text as id, owner_bucket(x) as bucket from unnest(${ids}::uuid[]) as x`;
    expect(rows).toHaveLength(ids.length);
    const buckets = new Set<number>();
    for (const r of rows) {
      expect(bucketOf(r.id), r.id).toBe(r.bucket);
      expect(bucketOf(r.id.toUpperCase()), r.id).toBe(r.bucket);
      expect(r.bucket).toBeGreaterThanOrEqual(0);
      expect(r.bucket).toBeLessThan(BUCKETS);
      buckets.add(r.bucket);
    }
    // 400 owners over 1,024 buckets: a hash worth the name spreads them over many.
    expect(buckets.size).toBeGreaterThan(250);
  });

  it('a fresh deployment spreads the buckets over main, s2 and s3; each shard holds exactly the buckets the map gives it', async () => {
    const [version] = await on('main')<{ version: string }[]>`select version::text as version from shard_map_version`;
    expect(version).toBeDefined();
    const rows = await on('main')<{ bucket: number; shard: string; copy_on: string | null }[]>`select bucket, shard, copy_on from shard_map order by bucket`;
    expect(rows.map((r) => r.bucket)).toEqual(Array.from({ length: BUCKETS }, (_, b) => b));
    expect(rows.every((r) => r.copy_on === null)).toBe(true);
    const map = theMap();
    expect(map.version).toBe(Number(version!.version));
    expect(map.shard).toEqual(rows.map((r) => r.shard));
    expect(t.shards.all.map((s) => s.name)).toEqual([...SHARDS]);
    for (const shard of SHARDS) {
      const mine = rows.filter((r) => r.shard === shard).map((r) => r.bucket);
      expect(mine.length, shard).toBeGreaterThanOrEqual(341);
      expect(mine.length, shard).toBeLessThanOrEqual(342);
      const held = (await on(shard)<{ bucket: number }[]>`select bucket from shard_buckets order by bucket`).map((r) => r.bucket);
      expect(held, shard).toEqual(mine);
    }
    // The process reports the version it routes by.
    expect(await count(on('main'), 'select count(*) as n from shard_clients where version = $1', [map.version])).toBeGreaterThanOrEqual(1);
  });

  it("every user's tasks, count, owner copy and events are on the shard the map gives their bucket, and nowhere else", async () => {
    for (let i = 0; i < 30; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, async (_, k) => {
          const session = await register(t.app);
          const tasks = [(await createTask(session, `Routed ${i + k} a`)).id, (await createTask(session, `Routed ${i + k} b`)).id];
          return { session, id: session.user.id, shard: shardOf(session.user.id), tasks };
        }),
      );
      users.push(...batch);
    }
    await t.deliverAccountEvents();
    for (const u of users) {
      for (const shard of SHARDS) {
        const rows = await rowsOf(shard, u.id);
        if (shard === u.shard) {
          expect(rows.tasks.map((r) => r.id)).toEqual([...u.tasks].sort());
          expect(rows.counts).toEqual([{ tasks: 2, closed: false }]);
          expect(rows.owners).toEqual([{ email: u.session.user.email, deleted: false }]);
          expect(rows.events.map((e) => e.type)).toEqual(['task.created', 'task.created']);
          expect(new Set(rows.events.map((e) => e.id))).toEqual(new Set(u.tasks));
        } else {
          expect(rows, `${u.id} on ${shard}`).toEqual({ tasks: [], counts: [], owners: [], events: [] });
        }
      }
    }
    // 30 owners: every shard got some.
    expect(new Set(users.map((u) => u.shard))).toEqual(new Set(SHARDS));
  });

  it('the whole API scenario runs on the three shards', async () => {
    await runScenario({ ...t, tasksDatabases: t.shards.all.map((s) => s.database) });
  });

  it("the admin's list walks every task of every shard once, newest first, ties across shards ordered by id", async () => {
    // Three owners on each shard, two tasks each, all created at the same instant.
    const tiedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
    for (const shard of SHARDS) {
      for (let k = 0; k < 3; k++) {
        const owner = ownerOn(theMap(), shard);
        for (let j = 0; j < 2; j++) {
          await on(shard)`insert into tasks (user_id, id, title, created_at, updated_at) values (${owner}, ${randomUUID()}, ${`Tied ${shard} ${k}.${j}`}, ${tiedAt}, ${tiedAt})`;
        }
        await on(shard)`insert into task_counts (user_id, tasks) values (${owner}, 2)`;
      }
    }
    // Runs of one shard: the ten newest tasks of all are on s3, the ten oldest on s2 (a page of
    // the merge then comes from one shard alone, so each shard must give its first `limit`).
    const runs = [
      { shard: 's3' as const, from: Date.now() + 3_600_000 },
      { shard: 's2' as const, from: Date.parse('2001-01-01T00:00:00.000Z') },
    ];
    for (const run of runs) {
      const owner = ownerOn(theMap(), run.shard);
      for (let j = 0; j < 10; j++) {
        const at = new Date(run.from + j);
        await on(run.shard)`insert into tasks (user_id, id, title, created_at, updated_at) values (${owner}, ${uuidv7(at.getTime())}, ${`Run ${run.shard} ${j}`}, ${at}, ${at})`;
      }
      await on(run.shard)`insert into task_counts (user_id, tasks) values (${owner}, 10)`;
    }
    const all = await everyTask();
    expect(all.filter((r) => r.at === BigInt(tiedAt.getTime()))).toHaveLength(18);
    expect(all.slice(0, 10).map((r) => r.shard)).toEqual(Array(10).fill('s3'));
    expect(all.slice(-10).map((r) => r.shard)).toEqual(Array(10).fill('s2'));
    expect(new Set(all.map((r) => r.shard))).toEqual(new Set(SHARDS));
    const walk = await walkAdminList();
    expect(listed(walk)).toEqual(expected(all));
    expect(new Set(walk.map((x) => x.id)).size).toBe(walk.length);
    // The owner each shard knows is shown (a registered user's email; an owner never heard of: its id alone).
    const someone = users[0]!;
    expect(walk.find((x) => x.id === someone.tasks[0])!.owner).toEqual({ id: someone.id, email: someone.session.user.email, role: 'user' });
  });

  it("the admin's list leaves out a move's copy of a bucket (copy_on): each task once", async () => {
    const u = users.find((x) => x.shard === 'main') ?? users[0]!;
    const b = bucketOf(u.id);
    const target = SHARDS.find((s) => s !== u.shard)!;
    const copied = await copyBucket(on(u.shard), on(target), b);
    expect(copied).toBeGreaterThanOrEqual(2);
    try {
      await on('main')`update shard_map set copy_on = ${target} where bucket = ${b}`;
      const version = await bumpMapVersion(on('main'));
      await t.shards.reload();
      expect(theMap().version).toBe(version);
      expect(t.shards.copiesOn(target)).toEqual([b]);

      const all = await everyTask();
      // The copy is there, in the target's table, beside the bucket's own rows.
      expect(all.filter((r) => r.shard === target && bucketOf(r.userId) === b)).toHaveLength(copied);
      const own = all.filter((r) => !(r.shard === target && bucketOf(r.userId) === b));
      const walk = await walkAdminList();
      expect(listed(walk)).toEqual(expected(own));
      expect(walk.filter((x) => u.tasks.includes(x.id))).toHaveLength(2);
      // The owner's own reads stay on the bucket's shard.
      const mine = await req(u.session)({ method: 'GET', url: '/v1/tasks?limit=9' });
      expect(mine.statusCode).toBe(200);
      expect(sortedIds(mine)).toEqual([...u.tasks].sort());
    } finally {
      await dropBucketRows(on(target), b);
      await on('main')`update shard_map set copy_on = null where bucket = ${b}`;
      await bumpMapVersion(on('main'));
      await t.shards.reload();
    }
    expect(t.shards.copiesOn(target)).toEqual([]);
  });

  it("a shard that does not answer in time fails the admin's list with a 503 naming it; reads of the other shards answer", async () => {
    const slow = await createTestApp({ sharing: t, env: { ...shardEnv(), SHARD_SCATTER_TIMEOUT_MS: '300' } });
    try {
      const elsewhere = users.find((x) => x.shard !== 's2')!;
      const lock = await holdInTransaction(db2!.url, 'lock table tasks in access exclusive mode');
      try {
        const res = await req(admin, slow.app)({ method: 'GET', url: '/v1/admin/tasks?limit=7' });
        const problem = expectProblem503(res);
        expect(problem.detail).toMatch(/\bs2\b/);
        expect(problem.detail).not.toMatch(/\bs3\b|\bmain\b/);
        // One owner's reads go to their own shard alone.
        const mine = await req(elsewhere.session, slow.app)({ method: 'GET', url: '/v1/tasks?limit=11' });
        expect(mine.statusCode, mine.body).toBe(200);
        expect(sortedIds(mine)).toEqual([...elsewhere.tasks].sort());
        const theirs = await req(admin, slow.app)({ method: 'GET', url: `/v1/admin/tasks?userId=${elsewhere.id}` });
        expect(theirs.statusCode, theirs.body).toBe(200);
        expect(theirs.json<PageBody<OwnedTaskBody>>().data).toHaveLength(elsewhere.tasks.length);
      } finally {
        await lock.release();
      }
      // The shard answers again: so does the list (a loaded machine may take a few tries within 300 ms).
      let again = await req(admin, slow.app)({ method: 'GET', url: '/v1/admin/tasks?limit=7' });
      for (let i = 0; i < 20 && again.statusCode === 503; i++) {
        await new Promise((r) => setTimeout(r, 200));
        again = await req(admin, slow.app)({ method: 'GET', url: '/v1/admin/tasks?limit=7' });
      }
      expect(again.statusCode, again.body).toBe(200);
      expect(listed(again.json<PageBody<OwnedTaskBody>>().data)).toEqual(expected((await everyTask()).slice(0, 7)));
    } finally {
      await slow.close();
    }
  });

  it("a fenced bucket (its shard_buckets row gone) refuses its owner's writes with a 503 and changes nothing; reads and other owners go on", async () => {
    const u = users.find((x) => users.some((y) => y !== x && y.shard === x.shard && bucketOf(y.id) !== bucketOf(x.id)))!;
    const neighbour = users.find((y) => y !== u && y.shard === u.shard && bucketOf(y.id) !== bucketOf(u.id))!;
    const b = bucketOf(u.id);
    const db = on(u.shard);
    const outboxCount = () => count(db, 'select count(*) as n from outbox');
    const before = { rows: await rowsOf(u.shard, u.id), outbox: await outboxCount() };
    await db`delete from shard_buckets where bucket = ${b}`;
    try {
      const r = req(u.session);
      const created = expectProblem503(await r({ method: 'POST', url: '/v1/tasks', payload: { title: 'While fenced' } }));
      expect(created.detail).toMatch(/moved between shards/);
      expectProblem503(await r({ method: 'PATCH', url: `/v1/tasks/${u.tasks[0]}`, payload: { title: 'Renamed while fenced' } }));
      expectProblem503(await r({ method: 'DELETE', url: `/v1/tasks/${u.tasks[1]}` }));
      expect({ rows: await rowsOf(u.shard, u.id), outbox: await outboxCount() }).toEqual(before);
      const list = await r({ method: 'GET', url: '/v1/tasks?limit=13' });
      expect(list.statusCode, list.body).toBe(200);
      expect(sortedIds(list)).toEqual([...u.tasks].sort());
      // Another owner of the same shard, in another bucket, writes on.
      const other = await createTask(neighbour.session, 'Neighbour writes on');
      neighbour.tasks.push(other.id);
      expect((await rowsOf(u.shard, neighbour.id)).tasks.map((x) => x.id)).toContain(other.id);
    } finally {
      await db`insert into shard_buckets (bucket) values (${b}) on conflict do nothing`;
    }
    const again = await createTask(u.session, 'After the fence');
    u.tasks.push(again.id);
    const patched = await req(u.session)({ method: 'PATCH', url: `/v1/tasks/${u.tasks[0]}`, payload: { title: 'Renamed after the fence' } });
    expect(patched.statusCode, patched.body).toBe(200);
    const after = await rowsOf(u.shard, u.id);
    expect(after.tasks.map((x) => x.id)).toEqual([...u.tasks].sort());
    expect(after.counts).toEqual([{ tasks: 3, closed: false }]);
  });

  it("a bucket moved and the map flipped under the process: the owner's next write finds the bucket gone, reloads the map and lands on the new shard", async () => {
    const u = users.find((x) => x.shard === 'main' && x.tasks.length === 2) ?? users.find((x) => x.tasks.length === 2)!;
    const source = u.shard;
    const target = SHARDS.find((s) => s !== source)!;
    const b = bucketOf(u.id);
    const loaded = theMap().version;
    // The move, by hand: copy the bucket's rows, drop them from the source, hand the bucket over, flip the map.
    expect(await copyBucket(on(source), on(target), b)).toBeGreaterThanOrEqual(2);
    await dropBucketRows(on(source), b);
    await on(source)`delete from shard_buckets where bucket = ${b}`;
    await on(target)`insert into shard_buckets (bucket) values (${b})`;
    await on('main')`update shard_map set shard = ${target} where bucket = ${b}`;
    const flipped = await bumpMapVersion(on('main'));
    for (const x of users) if (bucketOf(x.id) === b) x.shard = target;
    // The process still routes by the map it had.
    expect(theMap().version).toBe(loaded);
    expect(theMap().shard[b]).toBe(source);

    const made = await createTask(u.session, 'After the flip');
    u.tasks.push(made.id);
    expect(theMap().version).toBe(flipped);
    expect(theMap().shard[b]).toBe(target);
    const there = await rowsOf(target, u.id);
    expect(there.tasks.map((x) => x.id)).toEqual([...u.tasks].sort());
    expect(there.counts).toEqual([{ tasks: 3, closed: false }]);
    expect(there.events.map((e) => e.id)).toEqual([made.id]);
    expect((await rowsOf(source, u.id)).tasks).toEqual([]);

    const list = await req(u.session)({ method: 'GET', url: '/v1/tasks?limit=17' });
    expect(list.statusCode, list.body).toBe(200);
    expect(sortedIds(list)).toEqual([...u.tasks].sort());
    const renamed = await req(u.session)({ method: 'PATCH', url: `/v1/tasks/${u.tasks[0]}`, payload: { title: 'Renamed on the new shard' } });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(listed(await walkAdminList())).toEqual(expected(await everyTask()));
  });

  it('a process without TASK_SHARDS (or lacking a shard the map names) refuses to start over the sharded map', async () => {
    const refusal = async (env: Record<string, string> | undefined) =>
      createTestApp({ sharing: t, ...(env ? { env } : {}) }).then(
        async (app) => {
          await app.close();
          return undefined;
        },
        (err: unknown) => err,
      );
    const unsharded = await refusal(undefined);
    expect(unsharded).toBeInstanceOf(StartupError);
    expect((unsharded as Error).message).toMatch(/TASK_SHARDS is not set/);
    expect((unsharded as Error).message).toMatch(/s2, s3/);
    const lacking = await refusal({ TASK_SHARDS: 's2', SHARD_S2_URL: db2!.url });
    expect(lacking).toBeInstanceOf(StartupError);
    expect((lacking as Error).message).toMatch(/shards s3, which TASK_SHARDS does not name/);
  });

  it("an account's deletion (user.deleted) removes its tasks from its shard", async () => {
    const u = users.find((x) => x.shard !== 'main' && users.some((y) => y !== x && y.shard === x.shard))!;
    const neighbour = users.find((y) => y !== u && y.shard === u.shard)!;
    const neighbourBefore = await rowsOf(u.shard, neighbour.id);
    expect((await rowsOf(u.shard, u.id)).tasks).toHaveLength(u.tasks.length);
    const res = await req(admin)({ method: 'DELETE', url: `/v1/users/${u.id}` });
    expect(res.statusCode, res.body).toBe(204);
    expect(await t.deliverAccountEvents()).toBeGreaterThanOrEqual(1);
    const after = await rowsOf(u.shard, u.id);
    expect(after.tasks).toEqual([]);
    expect(after.counts).toEqual([{ tasks: 0, closed: true }]);
    expect(after.owners).toEqual([{ email: u.session.user.email, deleted: true }]);
    for (const shard of SHARDS) expect(await count(on(shard), 'select count(*) as n from tasks where user_id = $1', [u.id])).toBe(0);
    expect(await rowsOf(u.shard, neighbour.id)).toEqual(neighbourBefore);
    // The account's token finds it gone on its shard.
    expect((await req(u.session)({ method: 'GET', url: '/v1/tasks?limit=19' })).statusCode).toBe(401);
  });
});
