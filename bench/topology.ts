// `--topology`: what the production topology (`task-api cluster`, README "Scaling out") does to
// throughput and latency, on the mixed workload of --peers (bench/mixed.ts: 80 % list of 20, 15 %
// create, 5 % patch over 50 users), with the same load generators, in one run on one machine:
//
// 1. 1 vs 3 instances behind NGINX: `cluster start --instances 1` and `--instances 3` (one
//    replica each unless BENCH_TOPOLOGY_REPLICAS says otherwise; every instance on PgBouncer as
//    the cluster runs it, reads routed to the replica), measured through the public URL. The
//    two run alternately (1, 3, 1, 3 with --runs), each alone on the machine: a cluster is
//    stopped before the other starts, and every start is a fresh cluster, seeded.
// 2. Direct vs through PgBouncer: on the 1-instance cluster, after its NGINX rows, three more
//    `task-api serve` instances (bench/setup.ts startApi), measured on their own ports, one at
//    a time (the others SIGSTOPped), the order alternating: DATABASE_URL at the primary with
//    prepared statements (DATABASE_PREPARE=true, the default); at the primary without them
//    (false), which splits the difference in two; through PgBouncer (false, as the cluster must).
//    None of them reads from the replica, so every statement takes the path compared.
//
// Per system and repetition: a closed "max" row (autocannon, 32 connections) and an open-model
// row at 500/s. The measured instances run without their outbox relay, as in the suite and
// --peers; a paused `task-api worker` on the primary publishes between rows. The clusters run
// with the edge's and the API's rate limits lifted to quotas no run reaches (limiting stays on).
// Every cluster is stopped by `cluster stop` (by pid), also when the run fails or is interrupted.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { runLoad } from './load.js';
import { defineMixedRows, emptyCache, errorRate, measureMax, measureOpen, mixedRequest, mixedRows, MIXED_USERS, printTables, type MixedTarget } from './mixed.js';
import type { Options } from './options.js';
import { buildPools } from './pools.js';
import { ROOT, runToEnd, sleep } from './procs.js';
import { writeHtml } from './report-html.js';
import { Rows, summarise, writeJson } from './report.js';
import { drainWithWorker, HIGH_LIMITS, login, newSigningKey, redisClient, seed, startApi, type ApiInstance } from './setup.js';
import { median, round } from './stats.js';

const CLI = path.join(ROOT, 'dist', 'cli.js');
const RATE = 500;
/** Streaming replicas of each cluster (`cluster start --replicas`): 1 unless BENCH_TOPOLOGY_REPLICAS says. */
function replicasOf(env: NodeJS.ProcessEnv): number {
  const raw = env.BENCH_TOPOLOGY_REPLICAS ?? '1';
  if (!/^[0-8]$/.test(raw)) throw new Error(`BENCH_TOPOLOGY_REPLICAS must be an integer from 0 to 8 (got ${raw})`);
  return Number(raw);
}
// PgBouncer logs this when an answer of the server reaches it after it handed the server
// connection back to the pool: the answer is dropped, and the client waits for it forever.
const DROPPED = /got packet '.' from server when not linked/g;

/** The two cluster topologies, measured through NGINX. */
const CLUSTERS = [
  { instances: 1, name: 'nginx -> 1 instance' },
  { instances: 3, name: 'nginx -> 3 instances' },
] as const;

/** Part 2: one instance on its own port, by the way it reaches the primary. */
const PATHS = [
  { key: 'direct', name: 'direct to primary, prepared', via: 'primary', prepare: true },
  { key: 'unprepared', name: 'direct to primary, unprepared', via: 'primary', prepare: false },
  { key: 'pgbouncer', name: 'PgBouncer, unprepared', via: 'pgbouncer', prepare: false },
] as const;
type PathKey = (typeof PATHS)[number]['key'];

const FIG = {
  scaleRps: '3 instances / 1 instance req/s (max, via NGINX)',
  scaleP99: '3 instances / 1 instance p99 at 500/s',
  poolerRps: 'PgBouncer / direct req/s (max)',
  poolerP99: 'PgBouncer / direct p99 at 500/s',
  prepareRps: 'direct unprepared / direct prepared req/s (max)',
  hopRps: 'PgBouncer / direct, both unprepared, req/s (max)',
  errors: 'error rate, all rows',
};

/** What `cluster status` (and `cluster start`) print, as far as the bench reads it. */
interface ClusterStatus {
  dir: string;
  publicUrl: string;
  allAlive: boolean;
  instances: { name: string; url: string; pid: number | null }[];
  primary: { url: string } | null;
  replicas: { url: string }[];
  pgbouncer: { url: string; logFile: string } | null;
  redis: { url: string } | null;
}

/** Clusters that run: stopped by `cluster stop` when this process exits, however it exits. */
const live = new Set<string>();
let exitHook = false;

function stopAtExit(dir: string): void {
  live.add(dir);
  if (exitHook) return;
  exitHook = true;
  // On SIGINT the bench's handler (procs.ts) calls process.exit: only synchronous work runs here.
  process.on('exit', () => {
    for (const d of live) {
      try {
        execFileSync(process.execPath, [CLI, 'cluster', 'stop', '--dir', d], { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
      } catch {
        // Nothing more can be done from an exiting process; state.json names what is left.
      }
    }
  });
}

interface Cluster {
  status: ClusterStatus;
  startSeconds: number;
  stop(): Promise<void>;
}

async function startCluster(instances: number, replicas: number, env: NodeJS.ProcessEnv, progress: (msg: string) => void): Promise<Cluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'task-api-bench-topology-'));
  stopAtExit(dir);
  const t0 = Date.now();
  const stop = async () => {
    const r = await runToEnd(process.execPath, [CLI, 'cluster', 'stop', '--dir', dir], { PATH: process.env.PATH ?? '' }, 180_000);
    if (r.code !== 0) throw new Error(`cluster stop --dir ${dir} exited with ${r.code}:\n${r.stderr}`);
    live.delete(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  const r = await runToEnd(process.execPath, [CLI, 'cluster', 'start', '--dir', dir, '--instances', String(instances), '--replicas', String(replicas)], env, 240_000);
  if (r.code !== 0) {
    // A start that fails stops what it started; stop again in case it was interrupted.
    await stop().catch(() => undefined);
    throw new Error(`cluster start --instances ${instances} exited with ${r.code}:\n${r.stderr.slice(-4000)}`);
  }
  const status = JSON.parse(r.stdout) as ClusterStatus;
  if (!status.allAlive || !status.primary || !status.pgbouncer || !status.redis || status.instances.length !== instances) {
    await stop().catch(() => undefined);
    throw new Error(`cluster start --instances ${instances}: unexpected status ${r.stdout.slice(0, 2000)}`);
  }
  const startSeconds = round((Date.now() - t0) / 1000, 1);
  progress(`cluster of ${instances} instance(s) up in ${startSeconds} s under ${dir}: ${status.publicUrl}`);
  return { status, startSeconds, stop };
}

/** Waits (at most timeoutMs) until every replica has replayed what the primary had written when called. */
async function waitForReplicas(primaryUrl: string, replicaUrls: string[], timeoutMs: number): Promise<void> {
  const opts = { max: 1, onnotice: () => undefined };
  const primary = postgres(primaryUrl, opts);
  try {
    const [row] = await primary<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
    for (const url of replicaUrls) {
      const replica = postgres(url, opts);
      try {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const [r] = await replica<{ ok: boolean }[]>`select coalesce(pg_last_wal_replay_lsn() >= ${row!.lsn}::pg_lsn, false) as ok`;
          if (r?.ok) break;
          if (Date.now() > deadline) throw new Error(`replica ${url} has not replayed ${row!.lsn} within ${timeoutMs} ms`);
          await sleep(200);
        }
      } finally {
        await replica.end({ timeout: 5 });
      }
    }
  } finally {
    await primary.end({ timeout: 5 });
  }
}

interface Figures {
  maxRps: number;
  p50: number;
  p99: number;
}

export async function runTopology(o: Options, facts: Record<string, unknown>, progress: (msg: string) => void, started: number): Promise<number> {
  const rows = new Rows();
  const replicas = replicasOf(process.env);
  const users = Math.min(MIXED_USERS, o.users);
  const redisPrefix = `task-api-bench:${process.pid}:`;
  const jwtPrivateKey = newSigningKey();
  // Every instance, in the clusters and beside them: the same limits, pool, key and logging.
  const clusterEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    EDGE_RATE_LIMIT: '1000000',
    EDGE_RATE_BURST: '1000000',
    ...HIGH_LIMITS,
    JWT_PRIVATE_KEY: jwtPrivateKey,
    JWT_ACCESS_TTL_SECONDS: '86400',
    DATABASE_POOL_MAX: String(o.poolMax),
    OUTBOX_RELAY_ENABLED: 'false',
    REDIS_KEY_PREFIX: redisPrefix,
    LOG_LEVEL: 'info',
  };
  const cachePattern = `${redisPrefix}cache:*`;
  const phases: Record<string, unknown>[] = [];
  let failed = false;
  let droppedTotal = 0;

  for (const c of CLUSTERS) defineMixedRows(rows, c.name, o.connections, [RATE]);
  for (const p of PATHS) defineMixedRows(rows, p.name, o.connections, [RATE]);
  rows.define(FIG.scaleRps, 'figure', { note: `${mixedRows(CLUSTERS[1].name, o.connections).max} / ${mixedRows(CLUSTERS[0].name, o.connections).max}, per repetition` });
  rows.define(FIG.scaleP99, 'figure', { note: 'p99 of the open 500/s rows, 3 instances / 1 instance, per repetition' });
  rows.define(FIG.poolerRps, 'figure', { note: 'through PgBouncer (DATABASE_PREPARE=false) / direct to the primary (DATABASE_PREPARE=true), one instance, closed max' });
  rows.define(FIG.poolerP99, 'figure', { note: 'the same at 500/s (open model), p99' });
  rows.define(FIG.prepareRps, 'figure', { note: 'what prepared statements are worth: both direct to the primary' });
  rows.define(FIG.hopRps, 'figure', { note: 'what the PgBouncer hop costs alone: both without prepared statements' });
  rows.define(FIG.errors, 'figure', { bar: { op: '==', value: 0, label: 'error rate under the mixed load scenario' } });

  /**
   * One cluster, alone: started, seeded, its NGINX rows; with one instance, the direct and
   * PgBouncer rows beside it; stopped. Returns each system's figures of this repetition.
   */
  const phase = async (c: (typeof CLUSTERS)[number], rep: number): Promise<Record<string, Figures>> => {
    const out: Record<string, Figures> = {};
    const cluster = await startCluster(c.instances, replicas, clusterEnv, progress);
    const stoppable: ApiInstance[] = [];
    const redis = redisClient(cluster.status.redis!.url);
    const record: Record<string, unknown> = { rep, instances: c.instances, replicas, clusterStartSeconds: cluster.startSeconds };
    phases.push(record);
    const pgbLog = cluster.status.pgbouncer!.logFile;
    const droppedSoFar = () => (existsSync(pgbLog) ? (readFileSync(pgbLog, 'utf8').match(DROPPED) ?? []).length : 0);
    try {
      const primaryUrl = cluster.status.primary!.url;
      const seeded = await seed(primaryUrl, o.users, o.tasksPerUser, 'bench', 3600_000);
      await waitForReplicas(primaryUrl, cluster.status.replicas.map((r) => r.url), 60_000);
      record.seedSeconds = seeded.seconds;
      progress(`seeded ${seeded.tasks} tasks in ${seeded.seconds} s${replicas > 0 ? '; the replicas have replayed them' : ''}`);
      const settings = { redisUrl: cluster.status.redis!.url, redisPrefix, poolMax: o.poolMax, jwtPrivateKey, metrics: true, cache: true };
      // The relay and the consumers, on the primary: paused while rows are measured.
      const worker = await startApi({ ...settings, databaseUrl: primaryUrl, relay: true, command: 'worker', env: { MIGRATE_ON_START: 'false' } });
      stoppable.push(worker);
      worker.pause();
      const drain = () => drainWithWorker(worker, primaryUrl, progress);
      const sessions = await login(cluster.status.publicUrl, 'bench', users);
      const { patches } = await buildPools(primaryUrl, sessions);
      const next = (i: number) => mixedRequest(sessions, patches, i);

      const measure = async (name: string, target: MixedTarget) => {
        const n = mixedRows(name, o.connections);
        // Unmeasured warm-up (JIT, pools, connections): every process here is new.
        await runLoad({ url: target.url, durationS: 1, connections: o.connections, next: target.next });
        await drain();
        await emptyCache(redis, cachePattern);
        const m = await measureMax(rows, n.max, target, o.durationS, o.connections, progress);
        await drain();
        await emptyCache(redis, cachePattern);
        const r = await measureOpen(rows, n.open(RATE), target, RATE, o.durationS, progress);
        await drain();
        out[name] = { maxRps: m.rps, p50: r.p50, p99: r.p99 };
      };

      // The cluster through its public URL; VmRSS is api-1's.
      await measure(c.name, { url: cluster.status.publicUrl, pid: cluster.status.instances[0]!.pid ?? undefined, next });
      record.pgbouncerDroppedInClusterRows = droppedSoFar();

      if (c.instances === 1) {
        const byPath = new Map<PathKey, ApiInstance>();
        for (const p of PATHS) {
          const databaseUrl = p.via === 'primary' ? primaryUrl : cluster.status.pgbouncer!.url;
          // As the cluster's instances log: one line per request at info (here to /dev/null).
          const inst = await startApi({ ...settings, databaseUrl, relay: false, logLevel: 'info', discardStdout: true, env: { DATABASE_PREPARE: String(p.prepare), MIGRATE_ON_START: 'false' } });
          stoppable.push(inst);
          inst.pause();
          byPath.set(p.key, inst);
        }
        const order = rep % 2 === 1 ? [...PATHS] : [...PATHS].reverse();
        progress(`one instance beside the cluster, by its way to the primary: ${order.map((p) => p.name).join(', then ')}`);
        for (const p of order) {
          const inst = byPath.get(p.key)!;
          for (const other of byPath.values()) if (other !== inst) other.pause();
          inst.resume();
          await measure(p.name, { url: inst.url, pid: inst.pid, next });
          inst.pause();
        }
      }
    } finally {
      for (const inst of stoppable) await inst.stop().catch(() => undefined);
      redis.disconnect();
      const dropped = droppedSoFar();
      record.pgbouncerDroppedPackets = dropped;
      if (dropped > 0) {
        droppedTotal += dropped;
        const inRows = record.pgbouncerDroppedInClusterRows;
        progress(
          `PgBouncer dropped ${dropped} answers of the server${typeof inRows === 'number' ? ` (${inRows} of them during the cluster's own rows)` : ''} ("got packet ... when not linked" in ${pgbLog}): the clients that sent those statements never get an answer`,
        );
      }
      await cluster.stop();
      progress(`cluster of ${c.instances} instance(s) stopped`);
    }
    return out;
  };

  try {
    for (let rep = 1; rep <= o.runs; rep++) {
      progress(`repetition ${rep}/${o.runs}: ${CLUSTERS.map((c) => c.name).join(', then ')}`);
      const figs: Record<string, Figures> = {};
      for (const c of CLUSTERS) Object.assign(figs, await phase(c, rep));
      const [one, three] = CLUSTERS.map((c) => figs[c.name]!);
      const [direct, unprepared, pgbouncer] = PATHS.map((p) => figs[p.name]!);
      rows.ratio(FIG.scaleRps, three!.maxRps / one!.maxRps);
      rows.ratio(FIG.scaleP99, three!.p99 / one!.p99);
      rows.ratio(FIG.poolerRps, pgbouncer!.maxRps / direct!.maxRps);
      rows.ratio(FIG.poolerP99, pgbouncer!.p99 / direct!.p99);
      rows.ratio(FIG.prepareRps, unprepared!.maxRps / direct!.maxRps);
      rows.ratio(FIG.hopRps, pgbouncer!.maxRps / unprepared!.maxRps);
    }
    rows.ratio(FIG.errors, errorRate(rows));
  } catch (err) {
    failed = true;
    console.error('bench --topology: failed:', err instanceof Error ? err.stack : err);
  }

  const summaries = [...rows.rows.values()].filter((r) => r.runs.length > 0 || r.ratios.length > 0).map((r) => summarise(r));
  const printed = printTables(summaries);
  console.log(`\n${printed}\n`);
  const problems = summaries.flatMap((s) => s.problems.map((p) => `${s.name}: ${p}`));
  for (const p of problems) console.log(`PROBLEM ${p}`);
  const med = (name: string) => {
    const v = rows.rows.get(name)?.ratios ?? [];
    return v.length > 0 ? median(v) : NaN;
  };
  const pct = (x: number) => (Number.isFinite(x) ? `${((1 - x) * 100).toFixed(1)} %` : '-');
  console.log(
    [
      `Clusters: \`task-api cluster start --instances 1|3 --replicas ${replicas}\` (PgBouncer, DATABASE_PREPARE=false${replicas > 0 ? ', reads routed to the replicas' : ''}), each alone on the machine, fresh and seeded with ${o.users} users x ${o.tasksPerUser} tasks per start, measured through NGINX; the max RSS column of their rows is api-1's.`,
      `Direct vs PgBouncer: one instance beside the 1-instance cluster on its own port (no NGINX, no replica), the other two SIGSTOPped. The prepare difference (direct, unprepared / prepared, max) costs ${pct(med(FIG.prepareRps))} of the throughput; the PgBouncer hop alone (both unprepared) ${pct(med(FIG.hopRps))}; through PgBouncer as the cluster runs it vs direct with prepared statements, ${pct(med(FIG.poolerRps))} (a negative figure is a gain).`,
      `Every instance runs without its outbox relay (a paused task-api worker publishes between rows), rate limiting ON at the edge and in the API with quotas no run reaches, logging every request at info.`,
      ...(droppedTotal > 0
        ? [
            `WARNING: PgBouncer dropped ${droppedTotal} answers of PostgreSQL in the clusters ("got packet ... from server when not linked"): statements pipelined on one client connection (postgres.js) outlive PgBouncer 1.18's transaction-mode link, and their requests hang until the client gives up. See phases[].pgbouncerDroppedPackets (and pgbouncerDroppedInClusterRows: during the NGINX rows, before the instances beside the cluster ran) in the JSON.`,
          ]
        : []),
    ].join('\n'),
  );
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const meta = {
    ...facts,
    mode: 'topology',
    openRate: RATE,
    mixedUsers: users,
    replicas,
    pgbouncerDroppedPackets: droppedTotal,
    phases,
    loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
    startedAt: new Date(started).toISOString(),
    seconds: round((Date.now() - started) / 1000, 1),
    failed,
    problems,
  };
  const json = writeJson(o.outDir, stamp, { meta, rows: summaries, raw: [...rows.rows.values()] });
  const html = writeHtml(o.outDir, stamp, summaries, meta, printed);
  console.log(`results: ${json}\n         ${html}\n         ${path.join(o.outDir, 'latest.json')}`);
  return failed || problems.length > 0 ? 1 : 0;
}
