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
// 3. Split services behind the gateway vs the monolith behind NGINX, the same instances per role
//    (`cluster start --split --instances 2` against `--instances 2`); see splitComparison below,
//    which the default `npm run bench` also runs after the suite (bench/run.ts).
// 4. The monolith's tasks data on 1 shard vs 3 (`cluster start --instances 2 --shards 1` against
//    `--shards 3`); see shardComparison below, which the default run also runs, after part 3.
//
// Per system and repetition: a closed "max" row (autocannon, 32 connections) and an open-model
// row at 500/s. The measured instances run without their outbox relay, as in the suite and
// --peers; in parts 1 and 2 a paused `task-api worker` on the primary publishes between rows
// (parts 3 and 4 have none: their events stay in the outboxes). The clusters run
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
import { buildPools, type TaskRef } from './pools.js';
import { pssTreeMb, ROOT, rssMb, runToEnd, sleep } from './procs.js';
import { writeHtml, type HtmlSection } from './report-html.js';
import { Rows, summarise, writeJson, type RowSummary } from './report.js';
import { drainWithWorker, HIGH_LIMITS, login, newSigningKey, redisClient, seed, seededEmail, SEED_PASSWORD, startApi, type ApiInstance, type Session } from './setup.js';
import { CREATE_BODY } from './sql-capture.js';
import { median, round, shuffle } from './stats.js';

const CLI = path.join(ROOT, 'dist', 'cli.js');
const RATE = 500;
/**
 * Streaming replicas of each cluster (`cluster start --replicas`): 1 unless BENCH_TOPOLOGY_REPLICAS
 * says; the shard comparison's clusters 0 unless BENCH_SHARDS_REPLICAS says (each shard has that many).
 */
function replicasOf(env: NodeJS.ProcessEnv, variable: 'BENCH_TOPOLOGY_REPLICAS' | 'BENCH_SHARDS_REPLICAS' = 'BENCH_TOPOLOGY_REPLICAS'): number {
  const raw = env[variable] ?? (variable === 'BENCH_SHARDS_REPLICAS' ? '0' : '1');
  if (!/^[0-8]$/.test(raw)) throw new Error(`${variable} must be an integer from 0 to 8 (got ${raw})`);
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
  /** `split` for `cluster start --split`, else `monolith`. */
  topology?: string;
  /** The split topology's instances carry their service (auth, users, tasks, notifications). */
  instances: { name: string; url: string; pid: number | null; service?: string }[];
  primary: { url: string } | null;
  replicas: { url: string }[];
  pgbouncer: { url: string; logFile: string } | null;
  redis: { url: string } | null;
  /** The shards of the tasks data, main first (`cluster start --shards N`). */
  shards?: { name: string; url: string; readUrls: string[]; primaryUrl: string }[];
  /** Every process; the PostgreSQL servers of the extra shards carry their shard. */
  processes?: { name: string; pid: number | null; role: string; shard?: string }[];
}

/** Clusters that run: stopped by `cluster stop` when this process exits, however it exits. */
/** How many answers PgBouncer dropped, by its log (the DROPPED line). */
function droppedPackets(pgbLog: string): number {
  return existsSync(pgbLog) ? (readFileSync(pgbLog, 'utf8').match(DROPPED) ?? []).length : 0;
}

/** droppedPackets, said in the progress when there are any. */
function reportDropped(pgbLog: string, progress: (msg: string) => void): number {
  const d = droppedPackets(pgbLog);
  if (d > 0) progress(`PgBouncer dropped ${d} answers of the server ("got packet ... when not linked" in ${pgbLog}): the clients that sent those statements never get an answer`);
  return d;
}

/** The median of a row's ratios across repetitions; NaN before any. */
function medianRatio(rows: Rows, name: string): number {
  const v = rows.rows.get(name)?.ratios ?? [];
  return v.length > 0 ? median(v) : NaN;
}

/** A figure with d decimals, or '-' when it is not a number. */
const fmt = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '-');

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
  /**
   * "cluster of N instance(s)", "split cluster of N instance(s) per service", or "cluster of N
   * instance(s) on S shards": what progress lines call it.
   */
  label: string;
  stop(): Promise<void>;
}

/** The services of `cluster start --split`, each with --instances instances. */
const SPLIT_SERVICES = 4;

async function startCluster(instances: number, replicas: number, env: NodeJS.ProcessEnv, progress: (msg: string) => void, split = false, shards?: number): Promise<Cluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'task-api-bench-topology-'));
  stopAtExit(dir);
  const t0 = Date.now();
  const stop = async () => {
    const r = await runToEnd(process.execPath, [CLI, 'cluster', 'stop', '--dir', dir], { PATH: process.env.PATH ?? '' }, 180_000);
    if (r.code !== 0) throw new Error(`cluster stop --dir ${dir} exited with ${r.code}:\n${r.stderr}`);
    live.delete(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  const args = ['--instances', String(instances), '--replicas', String(replicas), ...(split ? ['--split'] : []), ...(shards === undefined ? [] : ['--shards', String(shards)])];
  const r = await runToEnd(process.execPath, [CLI, 'cluster', 'start', '--dir', dir, ...args], env, 240_000);
  if (r.code !== 0) {
    // A start that fails stops what it started; stop again in case it was interrupted.
    await stop().catch(() => undefined);
    throw new Error(`cluster start ${args.join(' ')} exited with ${r.code}:\n${r.stderr.slice(-4000)}`);
  }
  const status = JSON.parse(r.stdout) as ClusterStatus;
  const expected = split ? instances * SPLIT_SERVICES : instances;
  const shardsOk = shards === undefined || status.shards?.length === shards;
  if (!status.allAlive || !status.primary || !status.pgbouncer || !status.redis || status.instances.length !== expected || (split && status.topology !== 'split') || !shardsOk) {
    await stop().catch(() => undefined);
    throw new Error(`cluster start ${args.join(' ')}: unexpected status ${r.stdout.slice(0, 2000)}`);
  }
  const startSeconds = round((Date.now() - t0) / 1000, 1);
  const label = split
    ? `split cluster of ${instances} instance(s) per service`
    : `cluster of ${instances} instance(s)${shards === undefined ? '' : ` on ${shards} shard${shards === 1 ? '' : 's'}`}`;
  progress(`${label} up in ${startSeconds} s under ${dir}: ${status.publicUrl}`);
  return { status, startSeconds, label, stop };
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

/** Every instance, in the clusters and beside them: the same limits, pool, key and logging. */
function clusterEnvOf(poolMax: number, jwtPrivateKey: string, redisPrefix: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    EDGE_RATE_LIMIT: '1000000',
    EDGE_RATE_BURST: '1000000',
    ...HIGH_LIMITS,
    JWT_PRIVATE_KEY: jwtPrivateKey,
    JWT_ACCESS_TTL_SECONDS: '86400',
    DATABASE_POOL_MAX: String(poolMax),
    OUTBOX_RELAY_ENABLED: 'false',
    REDIS_KEY_PREFIX: redisPrefix,
    LOG_LEVEL: 'info',
  };
}

// 3. Split services behind the gateway vs the monolith behind NGINX (`--topology`, `--split-only`,
// and the default `npm run bench` after the suite: bench/run.ts). `cluster start --split
// --instances N` (auth, users, tasks and notifications, N instances each: 4N API processes behind
// the NGINX gateway) against `cluster start --instances N` (N monolith instances behind NGINX), N
// = --split-instances (2), the same --replicas, each alone on the machine, alternating which goes
// first, fresh and seeded the same way for every repetition.
//
// The basis is the same number of instances per role, not the same total of API processes. Every
// request of the mixed workload (list, create, patch) is a tasks route: the split serves it on its
// N tasks instances, the monolith on its N instances, the same number of event loops in the
// request path; the split's other 3N processes are auth (JWKS and logins, idle once the users are
// logged in), users (idle here) and notifications (no events reach it: see below). Equal totals
// would put 4N = 8 monolith instances on the two cores, which measures oversubscription, not the
// split: the 1 vs 3 rows above show more instances than cores cost a monolith throughput. So on
// one 2-core machine the comparison says what the split costs the request path (the gateway's
// routing by path, a service's token check with the auth service's cached JWKS instead of its own
// key, 4N processes' memory, pools, connections and metric scrapes on the same CPUs); what a split
// is for (scaling and deploying a service apart, on machines of its own, a fault staying in its
// service) cannot show on one machine.
//
// Seeding goes through the public API, on both clusters the same way: users registered with POST
// /v1/auth/register (the answer's access token is the session), then tasks created with POST
// /v1/tasks. `task-api seed` writes users and tasks into one database with SQL; on the split
// topology each service owns its data (the accounts in the identity database of auth and users,
// the tasks in the tasks service's), which the bench does not reach into. HTTP creates cost a round trip each, so
// the set is small (50 users x 100 tasks, 20 with --quick): the workload reads page 1 only, whose
// cost does not grow with the tasks behind it (one index range of 20 rows).
//
// Events: as in the rows above the instances run without their outbox relay, and no worker
// publishes: the events of the seeding and of the rows stay in the outboxes until the cluster
// stops, so neither topology does any publishing or consuming during or between its rows (the
// notifications service receives nothing), and the rows measure the request path.

/** How the split-vs-monolith comparison runs (bench/options.ts: Options.split). */
export interface SplitRun {
  runs: number;
  durationS: number;
  connections: number;
  /** Users registered through the public API (the workload's 50 unless --users is lower). */
  users: number;
  /** Tasks created through the public API for each user before the rows. */
  tasksPerUser: number;
  /** `--instances` of both clusters: per service in the split one (--split-instances, 2). */
  instances: number;
}

const SPLIT_PREFIX = 'split-bench';

/** Row and figure names of the comparison, for N instances per role. */
export function splitRowNames(n: number) {
  return {
    monolith: `monolith: nginx -> ${n} instance${n === 1 ? '' : 's'}`,
    split: `split: gateway -> ${SPLIT_SERVICES} services x ${n}`,
    rps: 'split / monolith req/s (max)',
    p99: 'split / monolith p99 at 500/s',
    rssMonolith: `monolith: RSS of its ${n} API process${n === 1 ? '' : 'es'} (MB)`,
    rssSplit: `split: RSS of its ${n * SPLIT_SERVICES} API processes (MB)`,
    errors: 'error rate, split vs monolith rows',
  };
}

/** Runs fn(0), fn(1), ... fn(count - 1), `parallel` at a time; after a failure no more are taken. */
async function inParallel(count: number, parallel: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await fn(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
}

/** POST of a JSON body (with a bearer token) that must answer 201; the parsed answer. */
async function post201<T>(url: string, route: string, body: unknown, token?: string): Promise<T> {
  const res = await fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`seeding through ${url}: POST ${route} answered ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

interface ApiSeed {
  sessions: Session[];
  patches: TaskRef[];
  tasks: number;
  seconds: number;
  /** Of which the registrations. */
  registerSeconds: number;
}

/**
 * Seeds a cluster through its public URL as a client would: registers users 1..n
 * (seededEmail(prefix, i), SEED_PASSWORD), 4 at a time, then creates tasksPerUser tasks for
 * each, round-robin over the users, 16 requests at a time. The patch pool is picked as
 * buildPools picks it from the database (each user's tasks counted from the newest, every 20th
 * from the 15th) and shuffled the same way.
 */
async function seedThroughApi(url: string, users: number, tasksPerUser: number, prefix = SPLIT_PREFIX): Promise<ApiSeed> {
  const t0 = Date.now();
  const sessions = new Array<Session>(users);
  await inParallel(users, 4, async (i) => {
    const b = await post201<{ user?: { id?: string }; accessToken?: string }>(url, '/v1/auth/register', { email: seededEmail(prefix, i + 1), password: SEED_PASSWORD });
    if (!b.user?.id || !b.accessToken) throw new Error(`seeding through ${url}: register answered ${JSON.stringify(b).slice(0, 300)}`);
    sessions[i] = { userId: b.user.id, token: b.accessToken };
  });
  const registerSeconds = round((Date.now() - t0) / 1000, 1);
  const ids = sessions.map(() => new Array<string>(tasksPerUser));
  await inParallel(users * tasksPerUser, 16, async (k) => {
    const user = k % users;
    const n = Math.floor(k / users);
    const b = await post201<{ id?: string }>(url, '/v1/tasks', { ...CREATE_BODY, tags: [...CREATE_BODY.tags], title: `Seeded task ${n + 1}` }, sessions[user]!.token);
    if (!b.id) throw new Error(`seeding through ${url}: create answered ${JSON.stringify(b).slice(0, 300)}`);
    ids[user]![n] = b.id;
  });
  const patches: TaskRef[] = [];
  ids.forEach((list, user) =>
    list.forEach((taskId, n) => {
      if ((list.length - n) % 20 === 15) patches.push({ user, taskId });
    }),
  );
  if (patches.length === 0) throw new Error(`seeding through ${url}: ${tasksPerUser} tasks per user leave none to patch`);
  return { sessions, patches: shuffle(patches, 3), tasks: users * tasksPerUser, seconds: round((Date.now() - t0) / 1000, 1), registerSeconds };
}

/** The same server's maintenance database: present whatever databases the services own. */
function maintenanceUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}

/** Errors over requests (answered or not) of the named rows. */
function errorRateOf(rows: Rows, names: string[]): number {
  const runs = names.flatMap((n) => rows.rows.get(n)?.runs ?? []);
  const total = runs.reduce((a, x) => a + x.requests + (x.statusCodes?.unanswered ?? 0), 0);
  return runs.reduce((a, x) => a + x.errors, 0) / Math.max(1, total);
}

export interface SplitComparison {
  /** One repetition: both clusters, each alone on the machine; the monolith first in odd repetitions. */
  repetition(rep: number): Promise<void>;
  /** After the last repetition: the error figure. */
  finish(): void;
  /** For the JSON's meta.split. */
  meta(): Record<string, unknown>;
  /** What the printed figures are, for the lines under the tables. */
  notes(): string[];
  /** PgBouncer's "got packet ... when not linked" warnings in the comparison's clusters. */
  droppedPackets(): number;
}

/** Defines the comparison's rows and figures in `rows`; each repetition() measures both clusters. */
export function splitComparison(s: SplitRun, poolMax: number, rows: Rows, progress: (msg: string) => void): SplitComparison {
  const replicas = replicasOf(process.env);
  const redisPrefix = `task-api-bench:${process.pid}:`;
  const env = clusterEnvOf(poolMax, newSigningKey(), redisPrefix);
  const cachePattern = `${redisPrefix}cache:*`;
  const names = splitRowNames(s.instances);
  const systems = [
    { name: names.monolith, split: false },
    { name: names.split, split: true },
  ] as const;
  const measured = systems.flatMap((sys) => {
    const n = mixedRows(sys.name, s.connections);
    return [n.max, n.open(RATE)];
  });
  for (const sys of systems) defineMixedRows(rows, sys.name, s.connections, [RATE]);
  rows.define(names.rps, 'figure', { note: `${mixedRows(names.split, s.connections).max} / ${mixedRows(names.monolith, s.connections).max}, per repetition; the same instances per role` });
  rows.define(names.p99, 'figure', { note: 'p99 of the open 500/s rows, split / monolith, per repetition' });
  rows.define(names.rssMonolith, 'figure', { note: 'VmRSS of every API instance, summed, right after the max row; per repetition' });
  rows.define(names.rssSplit, 'figure', { note: 'the same for the split: every service instance, summed' });
  rows.define(names.errors, 'figure', { bar: { op: '==', value: 0, label: 'error rate under the mixed load scenario' } });
  const phases: Record<string, unknown>[] = [];
  let dropped = 0;

  const phase = async (sys: (typeof systems)[number], rep: number): Promise<Figures & { rssMb: number }> => {
    const cluster = await startCluster(s.instances, replicas, env, progress, sys.split);
    const { status } = cluster;
    const redis = redisClient(status.redis!.url);
    const record: Record<string, unknown> = { rep, topology: sys.split ? 'split' : 'monolith', instances: s.instances, apiProcesses: status.instances.length, replicas, clusterStartSeconds: cluster.startSeconds };
    phases.push(record);
    const pgbLog = status.pgbouncer!.logFile;
    try {
      const seeded = await seedThroughApi(status.publicUrl, s.users, s.tasksPerUser);
      await waitForReplicas(maintenanceUrl(status.primary!.url), status.replicas.map((r) => maintenanceUrl(r.url)), 60_000);
      record.seedSeconds = seeded.seconds;
      record.registerSeconds = seeded.registerSeconds;
      progress(`seeded ${seeded.tasks} tasks of ${s.users} users through ${status.publicUrl} in ${seeded.seconds} s (${seeded.registerSeconds} s of it registering)${replicas > 0 ? '; the replicas have replayed them' : ''}`);
      const next = (i: number) => mixedRequest(seeded.sessions, seeded.patches, i);
      // VmRSS sampled in the rows: the monolith's api-1, the split's first tasks instance (the
      // service every request of the workload goes to).
      const sampled = sys.split ? status.instances.find((i) => i.service === 'tasks') : status.instances[0];
      const target: MixedTarget = { url: status.publicUrl, pid: sampled?.pid ?? undefined, next };
      const n = mixedRows(sys.name, s.connections);
      // Unmeasured warm-up (JIT, pools, connections, the JWKS the split's tasks service fetches).
      await runLoad({ url: target.url, durationS: 1, connections: s.connections, next });
      await emptyCache(redis, cachePattern);
      const m = await measureMax(rows, n.max, target, s.durationS, s.connections, progress);
      const rss = status.instances.reduce((a, i) => a + (i.pid === null ? NaN : rssMb(i.pid)), 0);
      await emptyCache(redis, cachePattern);
      const r = await measureOpen(rows, n.open(RATE), target, RATE, s.durationS, progress);
      return { maxRps: m.rps, p50: r.p50, p99: r.p99, rssMb: rss };
    } finally {
      redis.disconnect();
      const d = reportDropped(pgbLog, progress);
      record.pgbouncerDroppedPackets = d;
      dropped += d;
      await cluster.stop();
      progress(`${cluster.label} stopped`);
    }
  };

  const med = (name: string) => medianRatio(rows, name);
  return {
    async repetition(rep) {
      const order = rep % 2 === 1 ? [...systems] : [...systems].reverse();
      progress(`split comparison, repetition ${rep}/${s.runs}: ${order.map((x) => x.name).join(', then ')}`);
      const figs = new Map<boolean, Figures & { rssMb: number }>();
      for (const sys of order) figs.set(sys.split, await phase(sys, rep));
      const mono = figs.get(false)!;
      const split = figs.get(true)!;
      rows.ratio(names.rps, split.maxRps / mono.maxRps);
      rows.ratio(names.p99, split.p99 / mono.p99);
      rows.ratio(names.rssMonolith, round(mono.rssMb, 1));
      rows.ratio(names.rssSplit, round(split.rssMb, 1));
    },
    finish() {
      rows.ratio(names.errors, errorRateOf(rows, measured));
    },
    meta: () => ({
      instancesPerRole: s.instances,
      replicas,
      users: s.users,
      tasksPerUser: s.tasksPerUser,
      seededThrough: 'public API (POST /v1/auth/register, POST /v1/tasks)',
      durationS: s.durationS,
      connections: s.connections,
      runs: s.runs,
      pgbouncerDroppedPackets: dropped,
      phases,
    }),
    droppedPackets: () => dropped,
    notes: () => [
      `Split vs monolith: \`cluster start --split --instances ${s.instances}\` (auth, users, tasks, notifications x ${s.instances}: ${SPLIT_SERVICES * s.instances} API processes behind the NGINX gateway) against \`cluster start --instances ${s.instances}\` (the monolith behind NGINX): the same instances per role (every request of the workload is a tasks route), --replicas ${replicas}, each alone on the machine, fresh and seeded through the public API with ${s.users} users x ${s.tasksPerUser} tasks per start, the order alternating; no relay and no worker (events stay in the outboxes). The max RSS column of their rows is api-1's and tasks-1's.`,
      `Split / monolith: ${fmt(med(names.rps), 3)} of the throughput (max, ${s.connections} conn), ${fmt(med(names.p99), 3)} x the p99 at ${RATE}/s; resident memory of all API processes after the max row ${fmt(med(names.rssSplit), 0)} MB against ${fmt(med(names.rssMonolith), 0)} MB. Both share the same ${os.cpus().length} cores: the split adds processes, not CPU, so this is what the split costs the request path on one machine, not how it scales across machines.`,
      ...(dropped > 0 ? [`WARNING: PgBouncer dropped ${dropped} answers of PostgreSQL in the split comparison's clusters (meta.split.phases[].pgbouncerDroppedPackets).`] : []),
    ],
  };
}

// 4. The monolith's tasks data on 1 shard vs 3 (`--topology`, `--shards-only`, and the default
// `npm run bench` after the split comparison: bench/run.ts). `cluster start --instances 2 --shards
// 1` (the tasks data in the primary's database alone: no TASK_SHARDS, no bucket map, no bucket
// check on a write) against `--shards 3` (main and two more PostgreSQL servers, s2 and s3, each a
// server of its own; every instance gets TASK_SHARDS and reaches each shard through PgBouncer; on
// the fresh cluster the 1,024 buckets are spread evenly over the three at first start). Both with
// --replicas BENCH_SHARDS_REPLICAS (0: each shard gets that many, so 1 would compare 2 servers
// with 6 on the same cores), each alone on the machine, the order alternating (1 shard first in
// odd repetitions), fresh and seeded as the split comparison's clusters are, through the public
// API: every task is written by the router, on its owner's shard, as the rows' creates are.
//
// After the seeding, the tasks are counted on every shard's primary (their sum must be what was
// created), and for 3 shards `task-api shards status --json --dir D` gives each shard's buckets,
// its rows (from task_counts, by the map) and the skew: the report shows where the data went.
//
// On one machine every shard shares the same cores, memory and disk, so the comparison says what
// routing by owner costs the request path (the map, polled by every instance; the bucket's lock
// taken by every write; a pool per shard; three PostgreSQL servers' own work on the same cores),
// never what sharding gains (more CPU, more memory for cache, WAL bandwidth, smaller indexes per
// server, a smaller blast radius), which needs machines of their own.

/** How the 1-vs-3-shards comparison runs (bench/options.ts: Options.shards). */
export interface ShardRun {
  runs: number;
  durationS: number;
  connections: number;
  /** Users registered through the public API (the workload's 50 unless --users is lower). */
  users: number;
  /** Tasks created through the public API for each user before the rows. */
  tasksPerUser: number;
  /** `--instances` of both clusters (2, as the split comparison's monolith). */
  instances: number;
  /** `--shards` of the sharded cluster (3), against 1. */
  shards: number;
}

const SHARD_PREFIX = 'shard-bench';

/** The shards of `cluster start --shards N`: main, then s2 ... sN (src/operations/cluster/shards.ts). */
const shardNamesOf = (count: number) => ['main', ...Array.from({ length: count - 1 }, (_, i) => `s${i + 2}`)];

/** Row and figure names of the comparison, for N instances and S shards against 1. */
export function shardRowNames(n: number, shards: number) {
  const cluster = (k: number) => `${k} shard${k === 1 ? '' : 's'}: nginx -> ${n} instance${n === 1 ? '' : 's'}`;
  return {
    one: cluster(1),
    many: cluster(shards),
    rps: `${shards} shards / 1 shard req/s (max)`,
    p99: `${shards} shards / 1 shard p99 at 500/s`,
    rssOne: `1 shard: RSS of its ${n} API process${n === 1 ? '' : 'es'} (MB)`,
    rssMany: `${shards} shards: RSS of its ${n} API process${n === 1 ? '' : 'es'} (MB)`,
    pgOne: `1 shard: PSS of its PostgreSQL servers (MB)`,
    pgMany: `${shards} shards: PSS of its PostgreSQL servers (MB)`,
    tasksOn: (shard: string) => `${shards} shards: tasks on ${shard} after seeding`,
    skew: `${shards} shards: skew of the tasks after seeding`,
    errors: `error rate, 1 vs ${shards} shards rows`,
  };
}

/** One shard's share of the data after seeding. */
interface ShardSpread {
  name: string;
  /** Tasks counted on its primary. */
  tasks: number;
  /** From `shards status --json` (not with 1 shard: no map). */
  buckets?: number;
  rows?: number;
}

/** What `task-api shards status --json` prints. */
interface ShardsStatusJson {
  shards: { name: string; buckets: number; rows: number }[];
  skew: number;
  version: number;
  moving: number[];
}

/** `select count(*) from tasks` on one server. */
async function countTasks(url: string): Promise<number> {
  const db = postgres(url, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    const [row] = await db<{ n: number }[]>`select count(*)::int as n from tasks`;
    return row!.n;
  } finally {
    await db.end({ timeout: 5 });
  }
}

/**
 * Where the seeded tasks are: counted on every shard's primary (their sum must be `expected`), and
 * with more than one shard each one's buckets and rows and the skew from `task-api shards status
 * --json --dir D`, whose rows must match the counts.
 */
async function spreadOf(status: ClusterStatus, expected: number): Promise<{ shards: ShardSpread[]; skew?: number; mapVersion?: number }> {
  const shards = status.shards ?? [];
  const spread: ShardSpread[] = await Promise.all(shards.map(async (sh) => ({ name: sh.name, tasks: await countTasks(sh.primaryUrl) })));
  const total = spread.reduce((a, x) => a + x.tasks, 0);
  const listed = spread.map((x) => `${x.name} ${x.tasks}`).join(', ');
  if (total !== expected) throw new Error(`${expected} tasks were created through the API, the shards' primaries hold ${total} (${listed})`);
  if (shards.length < 2) return { shards: spread };
  const r = await runToEnd(process.execPath, [CLI, 'shards', 'status', '--json', '--dir', status.dir], { PATH: process.env.PATH ?? '' }, 60_000);
  const line = r.stdout.split('\n').find((l) => l.startsWith('{"shards"'));
  if (r.code !== 0 || !line) throw new Error(`shards status --json --dir ${status.dir} exited with ${r.code}:\n${r.stdout.slice(-1000)}${r.stderr.slice(-2000)}`);
  const st = JSON.parse(line) as ShardsStatusJson;
  for (const x of spread) {
    const s = st.shards.find((y) => y.name === x.name);
    x.buckets = s?.buckets;
    x.rows = s?.rows;
    if (x.rows !== x.tasks) throw new Error(`shards status says ${x.rows} rows on ${x.name}, its primary holds ${x.tasks} tasks`);
  }
  return { shards: spread, skew: st.skew, mapVersion: st.version };
}

export interface ShardComparison {
  /** One repetition: both clusters, each alone on the machine; 1 shard first in odd repetitions. */
  repetition(rep: number): Promise<void>;
  /** After the last repetition: the error figure. */
  finish(): void;
  /** For the JSON's meta.shards. */
  meta(): Record<string, unknown>;
  /** What the printed figures are, for the lines under the tables. */
  notes(): string[];
  /** PgBouncer's "got packet ... when not linked" warnings in the comparison's clusters. */
  droppedPackets(): number;
  /** The names of the comparison's rows and figures (its section of the report). */
  names(): Set<string>;
  /** Its section of the printed report: its rows and figures, then the tasks per shard of every phase. */
  section(summaries: RowSummary[]): string;
  /** The same for the HTML report. */
  htmlSection(summaries: RowSummary[]): HtmlSection;
}

/** Defines the comparison's rows and figures in `rows`; each repetition() measures both clusters. */
export function shardComparison(s: ShardRun, poolMax: number, rows: Rows, progress: (msg: string) => void): ShardComparison {
  const replicas = replicasOf(process.env, 'BENCH_SHARDS_REPLICAS');
  const redisPrefix = `task-api-bench:${process.pid}:`;
  const env = clusterEnvOf(poolMax, newSigningKey(), redisPrefix);
  const cachePattern = `${redisPrefix}cache:*`;
  const names = shardRowNames(s.instances, s.shards);
  const shardNames = shardNamesOf(s.shards);
  const systems = [
    { name: names.one, shards: 1 },
    { name: names.many, shards: s.shards },
  ] as const;
  const measured = systems.flatMap((sys) => {
    const n = mixedRows(sys.name, s.connections);
    return [n.max, n.open(RATE)];
  });
  const all = new Set<string>(measured);
  const define = (name: string, kind: 'api' | 'figure', extra: Parameters<Rows['define']>[2] = {}) => {
    rows.define(name, kind, extra);
    all.add(name);
  };
  for (const sys of systems) defineMixedRows(rows, sys.name, s.connections, [RATE]);
  define(names.rps, 'figure', { note: `${mixedRows(names.many, s.connections).max} / ${mixedRows(names.one, s.connections).max}, per repetition` });
  define(names.p99, 'figure', { note: `p99 of the open ${RATE}/s rows, ${s.shards} shards / 1 shard, per repetition` });
  define(names.rssOne, 'figure', { note: 'VmRSS of every API instance, summed, right after the max row; per repetition' });
  define(names.rssMany, 'figure', { note: 'the same with the tasks data on the shards' });
  define(names.pgOne, 'figure', { note: 'Pss of every PostgreSQL server and its backends, summed, right after the max row; per repetition' });
  define(names.pgMany, 'figure', { note: `the same for the ${s.shards} shards' servers` });
  for (const sh of shardNames) define(names.tasksOn(sh), 'figure', { note: `tasks counted on ${sh}'s primary after seeding, per repetition` });
  define(names.skew, 'figure', { note: "task-api shards status: the fullest shard's rows above the mean, as a fraction of it (0 = even)" });
  define(names.errors, 'figure', { bar: { op: '==', value: 0, label: 'error rate under the mixed load scenario' } });
  const phases: Record<string, unknown>[] = [];
  /** The tasks per shard after each phase's seeding, for the section's table. */
  const spreads: { rep: number; cluster: string; shards: ShardSpread[] }[] = [];
  let dropped = 0;

  const phase = async (sys: (typeof systems)[number], rep: number): Promise<Figures & { rssMb: number; pgMb: number }> => {
    const cluster = await startCluster(s.instances, replicas, env, progress, false, sys.shards);
    const { status } = cluster;
    const redis = redisClient(status.redis!.url);
    const record: Record<string, unknown> = { rep, shards: sys.shards, instances: s.instances, replicas, clusterStartSeconds: cluster.startSeconds };
    phases.push(record);
    const pgbLog = status.pgbouncer!.logFile;
    try {
      const seeded = await seedThroughApi(status.publicUrl, s.users, s.tasksPerUser, SHARD_PREFIX);
      for (const sh of status.shards ?? []) await waitForReplicas(sh.primaryUrl, sh.readUrls, 60_000);
      record.seedSeconds = seeded.seconds;
      record.registerSeconds = seeded.registerSeconds;
      const spread = await spreadOf(status, seeded.tasks);
      record.tasksPerShard = spread.shards;
      if (spread.skew !== undefined) record.skew = spread.skew;
      if (spread.mapVersion !== undefined) record.mapVersion = spread.mapVersion;
      spreads.push({ rep, cluster: sys.name, shards: spread.shards });
      const listed = spread.shards.map((x) => `${x.name} ${x.tasks}${x.buckets === undefined ? '' : ` (${x.buckets} buckets)`}`).join(', ');
      progress(`seeded ${seeded.tasks} tasks of ${s.users} users through ${status.publicUrl} in ${seeded.seconds} s (${seeded.registerSeconds} s of it registering); tasks per shard: ${listed}${spread.skew === undefined ? '' : `, skew ${spread.skew}`}`);
      const next = (i: number) => mixedRequest(seeded.sessions, seeded.patches, i);
      // VmRSS sampled in the rows: api-1's.
      const target: MixedTarget = { url: status.publicUrl, pid: status.instances[0]?.pid ?? undefined, next };
      const n = mixedRows(sys.name, s.connections);
      // Unmeasured warm-up (JIT, pools, connections to every shard).
      await runLoad({ url: target.url, durationS: 1, connections: s.connections, next });
      await emptyCache(redis, cachePattern);
      const m = await measureMax(rows, n.max, target, s.durationS, s.connections, progress);
      const rss = status.instances.reduce((a, i) => a + (i.pid === null ? NaN : rssMb(i.pid)), 0);
      const servers = (status.processes ?? []).filter((p) => p.role === 'postgres-primary' || p.role === 'postgres-replica');
      const pg = servers.reduce((a, p) => a + (p.pid === null ? NaN : pssTreeMb(p.pid)), 0);
      record.postgresServers = servers.length;
      await emptyCache(redis, cachePattern);
      const r = await measureOpen(rows, n.open(RATE), target, RATE, s.durationS, progress);
      return { maxRps: m.rps, p50: r.p50, p99: r.p99, rssMb: rss, pgMb: pg };
    } finally {
      redis.disconnect();
      const d = reportDropped(pgbLog, progress);
      record.pgbouncerDroppedPackets = d;
      dropped += d;
      await cluster.stop();
      progress(`${cluster.label} stopped`);
    }
  };

  const med = (name: string) => medianRatio(rows, name);
  const spreadHead = ['repetition', 'cluster', 'shard', 'buckets', 'tasks', 'share'];
  const spreadBody = () =>
    spreads.flatMap((p) => {
      const total = p.shards.reduce((a, x) => a + x.tasks, 0);
      return p.shards.map((x) => [String(p.rep), p.cluster, x.name, x.buckets === undefined ? 'all (no map)' : String(x.buckets), String(x.tasks), `${fmt((100 * x.tasks) / Math.max(1, total), 1)} %`]);
    });
  const ours = (summaries: RowSummary[]) => summaries.filter((r) => all.has(r.name));
  const title = `1 vs ${s.shards} shards`;
  const spreadCaption = `Tasks per shard after seeding (counted on each shard's primary; buckets from task-api shards status --json)`;
  return {
    async repetition(rep) {
      const order = rep % 2 === 1 ? [...systems] : [...systems].reverse();
      progress(`shard comparison, repetition ${rep}/${s.runs}: ${order.map((x) => x.name).join(', then ')}`);
      const figs = new Map<number, Figures & { rssMb: number; pgMb: number }>();
      for (const sys of order) figs.set(sys.shards, await phase(sys, rep));
      const one = figs.get(1)!;
      const many = figs.get(s.shards)!;
      rows.ratio(names.rps, many.maxRps / one.maxRps);
      rows.ratio(names.p99, many.p99 / one.p99);
      rows.ratio(names.rssOne, round(one.rssMb, 1));
      rows.ratio(names.rssMany, round(many.rssMb, 1));
      rows.ratio(names.pgOne, round(one.pgMb, 1));
      rows.ratio(names.pgMany, round(many.pgMb, 1));
      const sharded = spreads.filter((p) => p.rep === rep && p.cluster === names.many).at(-1);
      for (const sh of shardNames) rows.ratio(names.tasksOn(sh), sharded?.shards.find((x) => x.name === sh)?.tasks ?? NaN);
      const skew = phases.filter((p) => p.rep === rep && p.shards === s.shards).at(-1)?.skew;
      rows.ratio(names.skew, typeof skew === 'number' ? skew : NaN);
    },
    finish() {
      rows.ratio(names.errors, errorRateOf(rows, measured));
    },
    meta: () => ({
      instances: s.instances,
      shards: s.shards,
      replicas,
      users: s.users,
      tasksPerUser: s.tasksPerUser,
      seededThrough: 'public API (POST /v1/auth/register, POST /v1/tasks)',
      durationS: s.durationS,
      connections: s.connections,
      runs: s.runs,
      pgbouncerDroppedPackets: dropped,
      phases,
    }),
    droppedPackets: () => dropped,
    names: () => all,
    section(summaries) {
      const head = `${title}\n${'='.repeat(title.length)}`;
      const grid = (h: string[], body: string[][]) => {
        const widths = h.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
        const line = (cells: string[]) => cells.map((c, i) => (i <= 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
        return [line(h), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
      };
      return `${head}\n\n${printTables(ours(summaries))}\n\n${spreadCaption}:\n${grid(spreadHead, spreadBody())}`;
    },
    htmlSection: (summaries) => ({ title, rows: ours(summaries), tables: [{ caption: spreadCaption, head: spreadHead, body: spreadBody() }] }),
    notes: () => [
      `1 vs ${s.shards} shards: \`cluster start --instances ${s.instances} --shards 1\` against \`--shards ${s.shards}\` (main and ${shardNames.slice(1).join(', ')}, each a PostgreSQL server of its own, reached through PgBouncer), --replicas ${replicas} (per shard), both through NGINX, each alone on the machine, fresh and seeded through the public API with ${s.users} users x ${s.tasksPerUser} tasks per start, the order alternating; no relay and no worker (events stay in the outboxes). The max RSS column of their rows is api-1's.`,
      `${s.shards} shards / 1 shard: ${fmt(med(names.rps), 3)} of the throughput (max, ${s.connections} conn), ${fmt(med(names.p99), 3)} x the p99 at ${RATE}/s; API processes ${fmt(med(names.rssMany), 0)} MB against ${fmt(med(names.rssOne), 0)} MB, PostgreSQL servers (Pss) ${fmt(med(names.pgMany), 0)} MB against ${fmt(med(names.pgOne), 0)} MB. Every shard shares the same ${os.cpus().length} cores, memory and disk: this is what routing by owner costs on one machine and shows that the data spreads (tasks per shard above), not what sharding gains on machines of their own.`,
      ...(dropped > 0 ? [`WARNING: PgBouncer dropped ${dropped} answers of PostgreSQL in the shard comparison's clusters (meta.shards.phases[].pgbouncerDroppedPackets).`] : []),
    ],
  };
}

export async function runTopology(o: Options, facts: Record<string, unknown>, progress: (msg: string) => void, started: number): Promise<number> {
  const rows = new Rows();
  const replicas = replicasOf(process.env);
  const users = Math.min(MIXED_USERS, o.users);
  const redisPrefix = `task-api-bench:${process.pid}:`;
  const jwtPrivateKey = newSigningKey();
  const clusterEnv = clusterEnvOf(o.poolMax, jwtPrivateKey, redisPrefix);
  const cachePattern = `${redisPrefix}cache:*`;
  const phases: Record<string, unknown>[] = [];
  let failed = false;
  let droppedTotal = 0;

  // --split-only: the split comparison alone (part 3); --shards-only: the shard comparison alone
  // (part 4); --no-split, --no-shards: --topology without that part.
  const parts12 = o.topology;
  if (parts12) {
    for (const c of CLUSTERS) defineMixedRows(rows, c.name, o.connections, [RATE]);
    for (const p of PATHS) defineMixedRows(rows, p.name, o.connections, [RATE]);
    rows.define(FIG.scaleRps, 'figure', { note: `${mixedRows(CLUSTERS[1].name, o.connections).max} / ${mixedRows(CLUSTERS[0].name, o.connections).max}, per repetition` });
    rows.define(FIG.scaleP99, 'figure', { note: 'p99 of the open 500/s rows, 3 instances / 1 instance, per repetition' });
    rows.define(FIG.poolerRps, 'figure', { note: 'through PgBouncer (DATABASE_PREPARE=false) / direct to the primary (DATABASE_PREPARE=true), one instance, closed max' });
    rows.define(FIG.poolerP99, 'figure', { note: 'the same at 500/s (open model), p99' });
    rows.define(FIG.prepareRps, 'figure', { note: 'what prepared statements are worth: both direct to the primary' });
    rows.define(FIG.hopRps, 'figure', { note: 'what the PgBouncer hop costs alone: both without prepared statements' });
    rows.define(FIG.errors, 'figure', { bar: { op: '==', value: 0, label: 'error rate under the mixed load scenario' } });
  }
  const split = o.split ? splitComparison(o.split, o.poolMax, rows, progress) : undefined;
  const shards = o.shards ? shardComparison(o.shards, o.poolMax, rows, progress) : undefined;

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
    const droppedSoFar = () => droppedPackets(pgbLog);
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
      if (parts12) {
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
      await split?.repetition(rep);
      await shards?.repetition(rep);
    }
    if (parts12) rows.ratio(FIG.errors, errorRate(rows));
    split?.finish();
    shards?.finish();
  } catch (err) {
    failed = true;
    console.error('bench --topology: failed:', err instanceof Error ? err.stack : err);
  }

  const summaries = [...rows.rows.values()].filter((r) => r.runs.length > 0 || r.ratios.length > 0).map((r) => summarise(r));
  // The shard comparison's rows and figures go in a section of their own ("1 vs 3 shards").
  const inSection = shards?.names() ?? new Set<string>();
  const mainRows = summaries.filter((r) => !inSection.has(r.name));
  const printed = [...(mainRows.length > 0 ? [printTables(mainRows)] : []), ...(shards ? [shards.section(summaries)] : [])].join('\n\n');
  console.log(`\n${printed}\n`);
  const problems = summaries.flatMap((s) => s.problems.map((p) => `${s.name}: ${p}`));
  for (const p of problems) console.log(`PROBLEM ${p}`);
  const med = (name: string) => medianRatio(rows, name);
  const pct = (x: number) => (Number.isFinite(x) ? `${((1 - x) * 100).toFixed(1)} %` : '-');
  const parts12Notes = [
    `Clusters: \`task-api cluster start --instances 1|3 --replicas ${replicas}\` (PgBouncer, DATABASE_PREPARE=false${replicas > 0 ? ', reads routed to the replicas' : ''}), each alone on the machine, fresh and seeded with ${o.users} users x ${o.tasksPerUser} tasks per start, measured through NGINX; the max RSS column of their rows is api-1's.`,
    `Direct vs PgBouncer: one instance beside the 1-instance cluster on its own port (no NGINX, no replica), the other two SIGSTOPped. The prepare difference (direct, unprepared / prepared, max) costs ${pct(med(FIG.prepareRps))} of the throughput; the PgBouncer hop alone (both unprepared) ${pct(med(FIG.hopRps))}; through PgBouncer as the cluster runs it vs direct with prepared statements, ${pct(med(FIG.poolerRps))} (a negative figure is a gain).`,
    `Every instance runs without its outbox relay (a paused task-api worker publishes between rows), rate limiting ON at the edge and in the API with quotas no run reaches, logging every request at info.`,
    ...(droppedTotal > 0
      ? [
          `WARNING: PgBouncer dropped ${droppedTotal} answers of PostgreSQL in the clusters ("got packet ... from server when not linked"): statements pipelined on one client connection (postgres.js) outlive PgBouncer 1.18's transaction-mode link, and their requests hang until the client gives up. See phases[].pgbouncerDroppedPackets (and pgbouncerDroppedInClusterRows: during the NGINX rows, before the instances beside the cluster ran) in the JSON.`,
        ]
      : []),
  ];
  console.log([...(parts12 ? parts12Notes : []), ...(split?.notes() ?? []), ...(shards?.notes() ?? [])].join('\n'));
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const meta = {
    ...facts,
    mode: parts12 ? 'topology' : o.splitOnly ? 'split' : 'shards',
    openRate: RATE,
    mixedUsers: users,
    replicas,
    pgbouncerDroppedPackets: droppedTotal + (split?.droppedPackets() ?? 0) + (shards?.droppedPackets() ?? 0),
    phases,
    ...(split ? { split: split.meta() } : {}),
    ...(shards ? { shards: shards.meta() } : {}),
    loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
    startedAt: new Date(started).toISOString(),
    seconds: round((Date.now() - started) / 1000, 1),
    failed,
    problems,
  };
  const json = writeJson(o.outDir, stamp, { meta, rows: summaries, raw: [...rows.rows.values()] });
  const html = writeHtml(o.outDir, stamp, mainRows, meta, printed, shards ? [shards.htmlSection(summaries)] : []);
  console.log(`results: ${json}\n         ${html}\n         ${path.join(o.outDir, 'latest.json')}`);
  return failed || problems.length > 0 ? 1 : 0;
}
