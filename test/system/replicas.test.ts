// Read replicas on real streaming replication: this file makes a primary and two replicas of its
// own (src/operations/cluster/postgres.ts: initdb, pg_basebackup -R) on free ports in a temporary
// directory, one replica applying WAL 4 s late on purpose (recovery_min_apply_delay), and runs
// the API on them (openInfrastructure + buildApp, as `task-api serve` does) with
// DATABASE_URL=primary, DATABASE_READ_URLS=both replicas and the response cache on Redis. It
// proves:
// - read-your-writes: a user who just created, changed or deleted a task reads it back at once,
//   every time, cached or not, although a replica they could be sent to lacks the write;
// - another user's reads do go to a replica (the routed-reads metric, and the replica's own
//   scan counters);
// - a replica killed (SIGKILL): reads keep answering; restarted: it is read from again;
// - a replica lagging past DATABASE_REPLICA_MAX_LAG_MS is skipped, and taken back once it caught up.
// Every server it starts is stopped by its pid in afterAll.
import { randomBytes } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/infra/db/database.js';
import { migrate } from '../../src/infra/db/migrate.js';
import { openInfrastructure, type Infrastructure } from '../../src/infrastructure.js';
import { initPrimary, initReplica, pgUrl, postgresBin, psql, startNode, stopNode, type PgNode } from '../../src/operations/cluster/postgres.js';
import { PortAllocator } from '../../src/operations/cluster/processes.js';
import { as, register, testPrivateKey, uniqueEmail, type SessionBody } from '../helpers/app.js';
import { REDIS_URL } from '../setup/services.js';

const DB = 'tasks';
const APPLY_DELAY_MS = 4000;
const MAX_LAG_MS = 2000;

let dir = '';
const nodes: PgNode[] = [];
let primary: PgNode;
let fast: PgNode;
let delayed: PgNode;
let infra: Infrastructure | undefined;
let app: FastifyInstance | undefined;
let a: SessionBody;
let b: SessionBody;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const replicaLabel = (n: PgNode) => `127.0.0.1:${n.port}`;

/** The value of one series of the app's metrics (0 when absent). */
async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await infra!.metrics!.registry.metrics();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    if (want.every((w) => labelText.split(',').includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}
const routedToReplicas = async () =>
  ((await metric('db_reads_routed_total', { target: 'replica', reason: 'no-recent-write' })) ?? 0) +
  ((await metric('db_reads_routed_total', { target: 'replica', reason: 'caught-up' })) ?? 0);

/** Scans of the tasks partitions that the replica itself served (a standby counts its own). */
const scansOn = (n: PgNode) =>
  Number(psql(n.port, "select coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0) from pg_stat_user_tables where relname like 'tasks%'", DB));

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

beforeAll(async () => {
  expect(postgresBin(), 'the PostgreSQL server binaries are not installed').toBeDefined();
  dir = await mkdtemp(path.join(tmpdir(), 'task-api-replicas-'));
  chmodSync(dir, 0o755); // the servers run as the postgres user
  const ports = new PortAllocator();
  const node = async (name: string): Promise<PgNode> => {
    const n: PgNode = { name, port: await ports.take(), dataDir: path.join(dir, name), logFile: path.join(dir, `${name}.log`) };
    nodes.push(n);
    return n;
  };
  primary = await node('primary');
  await initPrimary(primary);
  await startNode(primary);
  psql(primary.port, `create database ${DB}`);
  const migrating = await openDatabase({ url: pgUrl(primary.port, DB), poolMax: 2, prepare: true, dataDir: '' });
  await migrate(migrating, { taskPartitions: 4 });
  await migrating.close();

  fast = await node('replica-fast');
  delayed = await node('replica-delayed');
  await initReplica(primary, fast);
  await initReplica(primary, delayed, { applyDelayMs: APPLY_DELAY_MS });
  await startNode(fast);
  await startNode(delayed);

  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATA_DIR: ':memory:',
    DATABASE_URL: pgUrl(primary.port, DB),
    DATABASE_READ_URLS: [fast, delayed].map((n) => pgUrl(n.port, DB)).join(','),
    DATABASE_REPLICA_MAX_LAG_MS: String(MAX_LAG_MS),
    DATABASE_REPLICA_POLL_MS: '100',
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    JWT_PRIVATE_KEY: testPrivateKey(),
    RATE_LIMIT_ENABLED: 'false',
  });
  infra = await openInfrastructure(config, pino({ level: 'silent' }));
  app = await buildApp({ config, ...infra });
  await app.ready();
  a = await register(app, uniqueEmail('writer'));
  b = await register(app, uniqueEmail('reader'));
  // Both replicas answer and have caught up (the delayed one 4 s after the registrations).
  await until('both replicas readable', async () => (await metric('db_replica_up', { replica: replicaLabel(delayed) })) === 1 && (await metric('db_replica_lag_seconds', { replica: replicaLabel(delayed) })) === 0);
}, 180_000);

afterAll(async () => {
  await app?.close();
  await infra?.close();
  for (const n of nodes.reverse()) await stopNode(n, 'immediate').catch(() => stopNode(n, 'kill'));
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('reads on streaming replicas', () => {
  it("a user reads their own writes back at once, every time, while another user's reads go to the replicas", async () => {
    const A = as(app!, a.accessToken);
    const B = as(app!, b.accessToken);
    const routedBefore = await routedToReplicas();
    const scansBefore = scansOn(fast) + scansOn(delayed);
    for (let i = 0; i < 25; i++) {
      const created = await A({ method: 'POST', url: '/v1/tasks', payload: { title: `iteration ${i}` } });
      expect(created.statusCode).toBe(201);
      const id = created.json<{ id: string }>().id;
      const got = await A({ method: 'GET', url: `/v1/tasks/${id}` });
      expect(got.statusCode, `created task ${i} read back`).toBe(200);
      const list = await A({ method: 'GET', url: '/v1/tasks?limit=100' });
      expect(list.json<{ data: { id: string }[] }>().data.map((t) => t.id)).toContain(id);

      const patched = await A({ method: 'PATCH', url: `/v1/tasks/${id}`, payload: { title: `iteration ${i} changed`, status: 'done' } });
      expect(patched.statusCode).toBe(200);
      const after = await A({ method: 'GET', url: `/v1/tasks/${id}` });
      expect(after.json()).toMatchObject({ title: `iteration ${i} changed`, status: 'done', version: 2 });
      const done = await A({ method: 'GET', url: '/v1/tasks?status=done&limit=100' });
      expect(done.json<{ data: { id: string }[] }>().data.map((t) => t.id)).toContain(id);

      if (i % 2 === 0) {
        expect((await A({ method: 'DELETE', url: `/v1/tasks/${id}` })).statusCode).toBe(204);
        expect((await A({ method: 'GET', url: `/v1/tasks/${id}` })).statusCode, `deleted task ${i}`).toBe(404);
        const gone = await A({ method: 'GET', url: '/v1/tasks?limit=100' });
        expect(gone.json<{ data: { id: string }[] }>().data.map((t) => t.id)).not.toContain(id);
      }
      // Another user's reads, each a different request (no cache hit).
      expect((await B({ method: 'GET', url: `/v1/tasks?limit=${i + 1}` })).statusCode).toBe(200);
    }
    const listed = await A({ method: 'GET', url: '/v1/tasks?limit=100' });
    expect(listed.json<{ data: unknown[] }>().data).toHaveLength(12);
    expect(await routedToReplicas()).toBeGreaterThan(routedBefore);
    // The replicas served those reads themselves: their own scan counters moved (a standby's
    // statistics are flushed within seconds).
    await until('scans counted on a replica', () => scansOn(fast) + scansOn(delayed) > scansBefore);
  });

  it('keeps answering when a replica is killed, and reads from it again once it is back', async () => {
    const B = as(app!, b.accessToken);
    let n = 0;
    const reads = async () => {
      const res = await B({ method: 'GET', url: `/v1/tasks?limit=${(n++ % 100) + 1}&sort=updatedAt` });
      expect(res.statusCode).toBe(200);
    };
    const reading = (async () => {
      for (let i = 0; i < 60; i++) await reads();
    })();
    await stopNode(fast, 'kill');
    await reading;
    await until('the killed replica reported down', async () => (await metric('db_replica_up', { replica: replicaLabel(fast) })) === 0);
    for (let i = 0; i < 20; i++) await reads();

    await startNode(fast);
    await until('the restarted replica reported up', async () => (await metric('db_replica_up', { replica: replicaLabel(fast) })) === 1);
    const scansBefore = scansOn(fast);
    await until('reads served by the restarted replica', async () => {
      for (let i = 0; i < 10; i++) await reads();
      return scansOn(fast) > scansBefore;
    });
  });

  it('skips a replica further behind than DATABASE_REPLICA_MAX_LAG_MS, and takes it back once it caught up', async () => {
    const A = as(app!, a.accessToken);
    const B = as(app!, b.accessToken);
    // Only the delayed replica is left to read from.
    await stopNode(fast, 'kill');
    await until('the fast replica reported down', async () => (await metric('db_replica_up', { replica: replicaLabel(fast) })) === 0);
    const laggingBefore = (await metric('db_reads_routed_total', { target: 'primary', reason: 'replicas-lagging' })) ?? 0;
    // Writes for longer than the maximum lag: the delayed replica falls 4 s behind.
    await until(
      'the delayed replica reported lagging',
      async () => {
        expect((await A({ method: 'POST', url: '/v1/tasks', payload: { title: 'keeps the primary moving' } })).statusCode).toBe(201);
        return ((await metric('db_replica_lag_seconds', { replica: replicaLabel(delayed) })) ?? 0) > MAX_LAG_MS / 1000;
      },
      60_000,
    );
    expect((await B({ method: 'GET', url: '/v1/tasks?limit=7&sort=dueAt' })).statusCode).toBe(200);
    expect(await metric('db_reads_routed_total', { target: 'primary', reason: 'replicas-lagging' })).toBeGreaterThan(laggingBefore);
    const health = await app!.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({ status: 'degraded', checks: { replicas: { status: 'down', critical: false }, database: { status: 'up' } } });

    // No more writes: it catches up and is read from again.
    await until('the delayed replica caught up', async () => (await metric('db_replica_lag_seconds', { replica: replicaLabel(delayed) })) === 0, 60_000);
    const routedBefore = await routedToReplicas();
    expect((await B({ method: 'GET', url: '/v1/tasks?limit=8&sort=dueAt' })).statusCode).toBe(200);
    expect(await routedToReplicas()).toBeGreaterThan(routedBefore);
  });
});
