// Moving a bucket between shards while two instances serve its owner (src/infra/shards/move.ts):
// the mixed load records every write it sent and whether it was acknowledged, and a checker
// compares that record with what the shards hold at the end: no acknowledged write lost, none
// applied twice, nothing from a refused write, no read missing an acknowledged row.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketOf } from '../../src/infra/shards/buckets.js';
import { openFleet, type ShardFleet } from '../../src/infra/shards/fleet.js';
import { loadMap } from '../../src/infra/shards/map.js';
import { moveBucket } from '../../src/infra/shards/move.js';
import { shardsCommand } from '../../src/operations/shards.js';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let s2: TestDatabase;
let s3: TestDatabase;
let one: TestApp;
let two: TestApp;
let fleet: ShardFleet;

const shardEnv = () => ({ TASK_SHARDS: 's2,s3', SHARD_S2_URL: s2.url, SHARD_S3_URL: s3.url, SHARD_MAP_REFRESH_MS: '50' });

beforeAll(async () => {
  [s2, s3] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  one = await createTestApp({ env: shardEnv() });
  two = await createTestApp({ sharing: one, env: shardEnv() });
  fleet = await openFleet(one.config);
});

afterAll(async () => {
  await fleet?.close();
  await two?.close();
  await one?.close();
  await Promise.all([s2?.drop(), s3?.drop()]);
});

/** Where the map puts the bucket, as the directory says now. */
async function shardOfBucket(bucket: number): Promise<string> {
  const map = await loadMap(fleet.directory.raw);
  return map!.shard[bucket]!;
}

/** The rows of one owner on each shard. */
async function rowsOn(userId: string): Promise<Record<string, { id: string; title: string; version: number }[]>> {
  const out: Record<string, { id: string; title: string; version: number }[]> = {};
  for (const [name, node] of fleet.shards) {
    out[name] = await node.db.raw.query('select id::text, title, version from tasks where user_id = $1 order by id', [userId]);
  }
  return out;
}

interface Attempt {
  kind: 'create' | 'update' | 'delete';
  id: string;
  title?: string;
  status: number;
  retryAfter?: string;
}

interface TaskState {
  title: string;
  deleted: boolean;
}

/**
 * One client of the owner: creates tasks, renames and deletes some, and lists after each
 * acknowledged write, alternating between the two instances. Everything it sent is recorded.
 */
async function client(session: SessionBody, worker: number, until: () => boolean, attempts: Attempt[], missingReads: string[]): Promise<Map<string, TaskState>> {
  const mine = new Map<string, TaskState>();
  for (let i = 0; i < 200 && !until(); i++) {
    const app = (i + worker) % 2 === 0 ? one.app : two.app;
    const call = as(app, session.accessToken);
    const live = [...mine].filter(([, s]) => !s.deleted);
    let attempt: Attempt;
    if (live.length < 3 || i % 3 === 0) {
      const title = `w${worker}-t${i}`;
      const res = await call({ method: 'POST', url: '/v1/tasks', payload: { title } });
      attempt = { kind: 'create', id: res.statusCode === 201 ? res.json<{ id: string }>().id : '', title, status: res.statusCode, retryAfter: res.headers['retry-after'] };
      if (res.statusCode === 201) mine.set(attempt.id, { title, deleted: false });
    } else if (i % 3 === 1) {
      const [id] = live[i % live.length]!;
      const title = `w${worker}-t${i}-renamed`;
      const res = await call({ method: 'PATCH', url: `/v1/tasks/${id}`, payload: { title } });
      attempt = { kind: 'update', id, title, status: res.statusCode, retryAfter: res.headers['retry-after'] };
      if (res.statusCode === 200) mine.get(id)!.title = title;
    } else {
      const [id] = live[0]!;
      const res = await call({ method: 'DELETE', url: `/v1/tasks/${id}` });
      attempt = { kind: 'delete', id, status: res.statusCode, retryAfter: res.headers['retry-after'] };
      if (res.statusCode === 204) mine.get(id)!.deleted = true;
    }
    attempts.push(attempt);
    // A read after the write: every task of this client's that is acknowledged and not deleted is there.
    const list = await call({ method: 'GET', url: '/v1/tasks?limit=100' });
    if (list.statusCode !== 200) {
      missingReads.push(`list answered ${list.statusCode}`);
      continue;
    }
    const seen = new Map(list.json<{ data: { id: string; title: string }[] }>().data.map((t) => [t.id, t.title]));
    for (const [id, s] of mine) {
      if (!s.deleted && seen.get(id) !== s.title) missingReads.push(`${id}: expected "${s.title}", read ${seen.has(id) ? `"${seen.get(id)}"` : 'nothing'}`);
    }
  }
  return mine;
}

describe('moving a bucket under load', () => {
  it('loses no acknowledged write, applies none twice, keeps every read whole, and empties the source', async () => {
    const session = await register(one.app);
    const others = await Promise.all([register(two.app), register(one.app)]);
    const bucket = bucketOf(session.user.id);
    const from = await shardOfBucket(bucket);
    const to = [...fleet.shards.keys()].find((n) => n !== from)!;
    // Some rows before the move starts.
    for (let i = 0; i < 5; i++) expect((await as(one.app, session.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: `before-${i}` } })).statusCode).toBe(201);

    let moving = true;
    const attempts: Attempt[] = [];
    const missingReads: string[] = [];
    const load = Promise.all([0, 1, 2].map((w) => client(session, w, () => !moving, attempts, missingReads)));
    // Other owners write meanwhile on their own shards.
    const background = Promise.all(
      others.map(async (o) => {
        for (let i = 0; i < 30 && moving; i++) expect((await as(two.app, o.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: `other-${i}` } })).statusCode).toBe(201);
      }),
    );
    await new Promise((r) => setTimeout(r, 150));
    const lines: string[] = [];
    const report = await moveBucket(fleet, { bucket, to, graceMs: 300, catchUpRows: 0, maxRounds: 3, outboxWaitMs: 0, say: (l) => lines.push(l) }).finally(() => {
      moving = false;
    });
    const states = await load;
    await background;

    expect(report.from).toBe(from);
    expect(report.to).toBe(to);
    expect(await shardOfBucket(bucket)).toBe(to);

    // The checker.
    const refused = attempts.filter((a) => ![200, 201, 204].includes(a.status));
    for (const a of refused) {
      // The only refusal a move may cause: a 503 with Retry-After, which changed nothing.
      expect(a.status, JSON.stringify(a)).toBe(503);
      expect(a.retryAfter).toBeDefined();
    }
    expect(missingReads).toEqual([]);
    const rows = await rowsOn(session.user.id);
    expect(rows[from]).toEqual([]);
    const stored = new Map(rows[to]!.map((r) => [r.id, r]));
    const expected = new Map<string, string>();
    for (const m of states) for (const [id, s] of m) if (!s.deleted) expected.set(id, s.title);
    const before = [...stored.values()].filter((r) => r.title.startsWith('before-'));
    expect(before).toHaveLength(5);
    // Acknowledged and not deleted: there with its last acknowledged title. Nothing else is there.
    for (const [id, title] of expected) expect(stored.get(id)?.title, id).toBe(title);
    expect(stored.size).toBe(expected.size + 5);
    // Refused creates left no row: every stored row is an acknowledged create (or from before).
    const acknowledged = new Set(attempts.filter((a) => a.kind === 'create' && a.status === 201).map((a) => a.id));
    for (const r of stored.values()) if (!r.title.startsWith('before-')) expect(acknowledged.has(r.id), r.id).toBe(true);
    // The load ran through the move: writes before, during (or refused by the fence) and after it.
    expect(attempts.filter((a) => a.status < 300).length).toBeGreaterThan(10);
    process.stdout.write(`move under load: ${attempts.length} writes, ${refused.length} answered 503 during the fence of ${report.fencedMs} ms\n`);
    // The count row agrees with the rows, on the target only.
    const [count] = await fleet.shard(to).db.raw.query<{ tasks: number }>('select tasks from task_counts where user_id = $1', [session.user.id]);
    expect(count?.tasks).toBe(stored.size);
    for (const [name, node] of fleet.shards) {
      if (name === to) continue;
      expect(await node.db.raw.query('select 1 from task_counts where user_id = $1', [session.user.id])).toEqual([]);
      expect(await node.db.raw.query('select bucket from shard_buckets where bucket = $1', [bucket])).toEqual([]);
    }
    expect(await fleet.shard(to).db.raw.query('select bucket from shard_buckets where bucket = $1', [bucket])).toEqual([{ bucket }]);
    // One task.created per acknowledged create, across every shard's outbox; none for a refused one.
    const events = new Map<string, number>();
    for (const node of fleet.shards.values()) {
      const rows = await node.db.raw.query<{ id: string; n: number }>(
        "select aggregate_id::text as id, count(*)::int as n from outbox where type = 'task.created' and user_id = $1 group by 1",
        [session.user.id],
      );
      for (const r of rows) events.set(r.id, (events.get(r.id) ?? 0) + r.n);
    }
    for (const a of attempts.filter((x) => x.kind === 'create' && x.status === 201)) expect(events.get(a.id), a.id).toBe(1);
    expect([...events.values()].every((n) => n === 1)).toBe(true);
    expect(events.size).toBe(attempts.filter((x) => x.kind === 'create' && x.status === 201).length + 5);
    // The other owners lost nothing either.
    for (const o of others) {
      const res = await as(one.app, o.accessToken)({ method: 'GET', url: '/v1/tasks?limit=100' });
      expect(res.json<{ data: unknown[] }>().data.length).toBeGreaterThan(0);
    }
    expect(report.tables.tasks!.rows).toBeGreaterThanOrEqual(5);
    expect(lines.some((l) => l.includes('writes were held for'))).toBe(true);
    // The instances count what the move did to their writes, and route by the flipped map (once
    // they have polled it: asked here rather than waited for).
    await Promise.all([one.shards.reload(), two.shards.reload()]);
    const exposition = (await one.app.metrics!.registry.metrics()) + (await two.app.metrics!.registry.metrics());
    const counted = (outcome: string) =>
      [...exposition.matchAll(new RegExp(`^shard_writes_moved_total\\{outcome="${outcome}"[^}]*\\} (\\d+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
    expect(counted('fenced')).toBe(refused.length);
    const version = (await loadMap(fleet.directory.raw))!.version;
    expect([...exposition.matchAll(/^shard_map_version(?:\{[^}]*\})? (\d+)$/gm)].map((m) => Number(m[1]))).toEqual([version, version]);
  });

  it('undoes a move whose flip an instance does not take up: the source keeps the bucket and its writes', async () => {
    const session = await register(one.app);
    const bucket = bucketOf(session.user.id);
    const from = await shardOfBucket(bucket);
    const to = [...fleet.shards.keys()].find((n) => n !== from)!;
    const call = as(one.app, session.accessToken);
    expect((await call({ method: 'POST', url: '/v1/tasks', payload: { title: 'kept' } })).statusCode).toBe(201);
    // An instance that answers its polls but never loads a newer map.
    await fleet.directory.raw.query("insert into shard_clients (instance, version, seen_at) values ('stuck', 0, now() + interval '1 hour')");
    try {
      await expect(moveBucket(fleet, { bucket, to, ackTimeoutMs: 300, graceMs: 0, outboxWaitMs: 0 })).rejects.toThrow(/older map/);
    } finally {
      await fleet.directory.raw.query("delete from shard_clients where instance = 'stuck'");
    }
    const map = await loadMap(fleet.directory.raw);
    expect(map!.shard[bucket]).toBe(from);
    expect(map!.copyOn[bucket]).toBeNull();
    expect(await fleet.shard(to).db.raw.query('select 1 from tasks where user_id = $1', [session.user.id])).toEqual([]);
    expect(await fleet.shard(from).db.raw.query('select bucket from shard_buckets where bucket = $1', [bucket])).toEqual([{ bucket }]);
    expect((await call({ method: 'POST', url: '/v1/tasks', payload: { title: 'after' } })).statusCode).toBe(201);
    const list = await call({ method: 'GET', url: '/v1/tasks' });
    expect(list.json<{ data: { title: string }[] }>().data.map((t) => t.title).sort()).toEqual(['after', 'kept']);
  });

  it('finishes a move interrupted after its mark (copy_on set) when run again', async () => {
    const session = await register(one.app);
    const bucket = bucketOf(session.user.id);
    const from = await shardOfBucket(bucket);
    const to = [...fleet.shards.keys()].find((n) => n !== from)!;
    const call = as(one.app, session.accessToken);
    expect((await call({ method: 'POST', url: '/v1/tasks', payload: { title: 'one' } })).statusCode).toBe(201);
    // As a mover that died after its mark, its first copy and its fence would leave it.
    await fleet.directory.rawTransaction(async (raw) => {
      await raw.query('update shard_map set copy_on = $2 where bucket = $1', [bucket, to]);
      await raw.query('update shard_map_version set version = version + 1');
    });
    await fleet.shard(to).db.raw.query("insert into tasks (user_id, id, title, created_at, updated_at) values ($1, gen_random_uuid(), 'half-copied', now(), now())", [session.user.id]);
    await fleet.shard(from).db.raw.query('delete from shard_buckets where bucket = $1', [bucket]);
    expect((await call({ method: 'POST', url: '/v1/tasks', payload: { title: 'fenced' } })).statusCode).toBe(503);
    const report = await moveBucket(fleet, { bucket, to, graceMs: 0, outboxWaitMs: 0 });
    expect(report.tables.tasks!.rows).toBe(1);
    const list = await call({ method: 'GET', url: '/v1/tasks' });
    expect(list.json<{ data: { title: string }[] }>().data.map((t) => t.title)).toEqual(['one']);
    expect((await call({ method: 'POST', url: '/v1/tasks', payload: { title: 'two' } })).statusCode).toBe(201);
  });

  it('status prints one JSON object with buckets, rows and skew per shard; rebalance evens the rows out', async () => {
    const out: string[] = [];
    const env = { ...process.env };
    Object.assign(process.env, { DATABASE_URL: one.testDb!.url, ...shardEnv() });
    try {
      expect(await shardsCommand(['status', '--json'], (l) => out.push(l))).toBe(0);
      const status = JSON.parse(out.at(-1)!) as { shards: { name: string; buckets: number; rows: number }[]; skew: number };
      expect(status.shards.map((s) => s.name).sort()).toEqual(['main', 's2', 's3']);
      expect(status.shards.reduce((a, s) => a + s.buckets, 0)).toBe(1024);
      const [total] = await Promise.all([...fleet.shards.values()].map(async (n) => (await n.db.raw.query<{ n: number }>('select count(*)::int as n from tasks'))[0]!.n));
      expect(status.shards.reduce((a, s) => a + s.rows, 0)).toBeGreaterThanOrEqual(total!);
      expect(typeof status.skew).toBe('number');

      // Put every owner's bucket on main, then rebalance.
      const users = await Promise.all(Array.from({ length: 9 }, () => register(one.app)));
      for (const u of users) for (let i = 0; i < 3; i++) await as(one.app, u.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: `r${i}` } });
      for (const u of users) {
        const b = bucketOf(u.user.id);
        if ((await shardOfBucket(b)) !== 'main') await moveBucket(fleet, { bucket: b, to: 'main', graceMs: 0, outboxWaitMs: 0 });
      }
      out.length = 0;
      expect(await shardsCommand(['rebalance', '--max-skew', '0.5', '--grace-ms', '0', '--outbox-wait-ms', '0'], (l) => out.push(l))).toBe(0);
      const after = JSON.parse(out.at(-1)!) as { shards: { rows: number }[]; skew: number };
      expect(after.skew).toBeLessThanOrEqual(0.5);
      // Every owner still sees their tasks.
      for (const u of users) {
        const res = await as(two.app, u.accessToken)({ method: 'GET', url: '/v1/tasks' });
        expect(res.json<{ data: unknown[] }>().data).toHaveLength(3);
      }
    } finally {
      process.env = env;
    }
  });
});
