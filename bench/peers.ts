// `--peers`: task-api against the seed's own stack (bench/peers/seed-stack: Express, ioredis cache
// middleware, rate-limiter-flexible, prom-client, winston, JWT, node-postgres) on the same
// PostgreSQL database (the same seeded, hash-partitioned `tasks` table) and the same Redis (each
// under its own key prefix). The mixed workload: 80 % list of 20 (page 1), 15 % create, 5 % patch,
// over 50 users. Per system and repetition (each alone: the other SIGSTOPped; the order alternates):
// a closed "max" row (autocannon, 32 connections) and open-model rows at 500/s and 700/s
// (bench/open-model.ts). Resident memory is sampled in every row.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../tools/local.js';
import { runLoad } from './load.js';
import { defineMixedRows, emptyCache, errorRate, measureMax, measureOpen, mixedRequest, mixedRows, MIXED_USERS, printTables } from './mixed.js';
import type { Options } from './options.js';
import { buildPools } from './pools.js';
import { ROOT, spawnTracked, waitForUrl } from './procs.js';
import { writeHtml } from './report-html.js';
import { Rows, summarise, writeJson } from './report.js';
import { deleteKeys, drainWithWorker, login, migrate, newSigningKey, recreateDatabase, redisClient, seed, startApi, type ApiInstance, type Session } from './setup.js';
import { round } from './stats.js';

export const PEER_DIR = path.join(ROOT, 'bench', 'peers', 'seed-stack');
export const PEER_INSTALL = 'npm ci --prefix bench/peers/seed-stack --no-audit --no-fund';
const OPEN_RATES = [500, 700] as const;
const PROJECT = 'task-api';
const PEER = 'seed-stack';

interface Instance {
  url: string;
  pid: number;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
  output(): string;
}

/** `node server.js` of the peer, on a free loopback port; its per-request log lines go to /dev/null. */
async function startPeer(s: { databaseUrl: string; redisUrl: string; redisPrefix: string; poolMax: number; jwtSecret: string }): Promise<Instance> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: s.databaseUrl,
    DATABASE_POOL_MAX: String(s.poolMax),
    REDIS_URL: s.redisUrl,
    REDIS_KEY_PREFIX: s.redisPrefix,
    JWT_SECRET: s.jwtSecret,
    // The seed's 10 per second per IP, block 60 s, lifted as the bench lifts task-api's.
    RATE_LIMIT_POINTS: '1000000',
    RATE_LIMIT_DURATION: '1',
    RATE_LIMIT_BLOCK_DURATION: '0',
  };
  const child: ChildProcess = spawnTracked(process.execPath, [path.join(PEER_DIR, 'server.js')], { cwd: PEER_DIR, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let out = '';
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForUrl(`${url}/health`, child, 30_000, () => out);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const alive = () => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  return {
    url,
    pid: child.pid!,
    output: () => out,
    pause: () => {
      if (alive()) process.kill(child.pid!, 'SIGSTOP');
    },
    resume: () => {
      if (alive()) process.kill(child.pid!, 'SIGCONT');
    },
    async stop() {
      if (alive()) {
        process.kill(child.pid!, 'SIGCONT');
        process.kill(child.pid!, 'SIGTERM');
      }
      const timer = setTimeout(() => {
        if (alive()) process.kill(child.pid!, 'SIGKILL');
      }, 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

interface System {
  name: string;
  inst: Instance;
  sessions: Session[];
  /** Redis patterns of its response cache (emptied before every row). */
  cache: string;
  /** After each of its rows (task-api: the worker publishes the outbox). */
  after: () => Promise<void>;
}

const FIG = {
  rps: `${PROJECT} req/s / ${PEER} req/s (max)`,
  p99: `${PROJECT} p99 / ${PEER} p99 at 500/s`,
  spread: `${PROJECT} p99 / p50 at 500/s`,
  rssProject: `${PROJECT} max RSS under the mixed load (MB)`,
  rssPeer: `${PEER} max RSS under the mixed load (MB)`,
  errors: 'error rate, both systems, all rows',
};

export async function runPeers(o: Options, facts: Record<string, unknown>, progress: (msg: string) => void, started: number): Promise<number> {
  if (!existsSync(path.join(PEER_DIR, 'node_modules', 'express'))) {
    console.error(`bench --peers: ${path.relative(ROOT, PEER_DIR)}/node_modules is missing; install the peer's dependencies first:\n  ${PEER_INSTALL}`);
    return 2;
  }
  const projectPrefix = `task-api-bench:${process.pid}:`;
  const peerPrefix = `seed-stack-bench:${process.pid}:`;
  const redis = redisClient(o.redisUrl);
  const rows = new Rows();
  const stoppable: Instance[] = [];
  let failed = false;
  const users = Math.min(MIXED_USERS, o.users);
  const rates = OPEN_RATES;
  try {
    progress(`database ${o.databaseUrl}: drop, create, migrate, seed ${o.users} users x ${o.tasksPerUser} tasks`);
    await recreateDatabase(o.databaseUrl);
    await migrate(o.databaseUrl);
    const seeded = await seed(o.databaseUrl, o.users, o.tasksPerUser, 'bench', 3600_000);
    progress(`seeded ${seeded.tasks} tasks in ${seeded.seconds} s`);

    const settings = { databaseUrl: o.databaseUrl, redisUrl: o.redisUrl, redisPrefix: projectPrefix, poolMax: o.poolMax, jwtPrivateKey: newSigningKey() };
    // Both log one line per request at info, to /dev/null (the seed logs every request; task-api's
    // request log is on at info too).
    const api: ApiInstance = await startApi({ ...settings, metrics: true, cache: true, relay: false, logLevel: 'info', discardStdout: true });
    stoppable.push(api);
    const worker = await startApi({ ...settings, metrics: true, cache: true, relay: true, command: 'worker' });
    stoppable.push(worker);
    worker.pause();
    const peer = await startPeer({ databaseUrl: o.databaseUrl, redisUrl: o.redisUrl, redisPrefix: peerPrefix, poolMax: o.poolMax, jwtSecret: randomBytes(32).toString('hex') });
    stoppable.push(peer);
    progress(`${PROJECT} pid ${api.pid} at ${api.url} (worker pid ${worker.pid}, paused); ${PEER} pid ${peer.pid} at ${peer.url}; logging ${users} users in on each`);
    const projectSessions = await login(api.url, 'bench', users);
    const peerSessions = await login(peer.url, 'bench', users);
    for (let u = 0; u < users; u++) {
      if (projectSessions[u]!.userId !== peerSessions[u]!.userId) throw new Error(`user ${u + 1}: the two systems logged in different users`);
    }
    const { patches } = await buildPools(o.databaseUrl, projectSessions);
    progress(`${patches.length} tasks of those users to patch`);

    const systems: System[] = [
      {
        name: PROJECT,
        inst: api,
        sessions: projectSessions,
        cache: `${projectPrefix}cache:*`,
        after: () => drainWithWorker(worker, o.databaseUrl, progress),
      },
      { name: PEER, inst: peer, sessions: peerSessions, cache: `${peerPrefix}cache*`, after: async () => undefined },
    ];
    for (const sys of systems) defineMixedRows(rows, sys.name, o.connections, rates);
    rows.define(FIG.rps, 'figure', { bar: { op: '>=', value: 3, label: 'task-api req/s vs the seed stack, closed max' } });
    rows.define(FIG.p99, 'figure', { bar: { op: '<=', value: 0.1, label: 'task-api p99 vs the seed stack at 500/s (open model)' } });
    rows.define(FIG.spread, 'figure', { bar: { op: '<=', value: 3, label: 'task-api p99/p50 at 500/s (open model)' } });
    rows.define(FIG.rssProject, 'figure', { bar: { op: '<', value: 150, label: 'resident memory of one instance under load' } });
    rows.define(FIG.rssPeer, 'figure');
    rows.define(FIG.errors, 'figure', { bar: { op: '==', value: 0, label: 'error rate under the mixed load scenario' } });

    const all = systems.map((s) => s.inst);
    const only = (target: Instance) => {
      for (const inst of all) {
        if (inst === target) inst.resume();
        else inst.pause();
      }
    };
    const cold = (sys: System) => emptyCache(redis, sys.cache);
    const next = (sys: System) => (i: number) => mixedRequest(sys.sessions, patches, i);

    // Unmeasured warm-up of each (JIT, pools, connections).
    for (const sys of systems) {
      only(sys.inst);
      await runLoad({ url: sys.inst.url, durationS: 1, connections: o.connections, next: next(sys) });
      await sys.after();
    }

    for (let rep = 1; rep <= o.runs; rep++) {
      const order = rep % 2 === 1 ? systems : [...systems].reverse();
      progress(`repetition ${rep}/${o.runs}: ${order.map((s) => s.name).join(', then ')}`);
      const byRep: Record<string, { maxRps: number; p50: number; p99: number }> = {};
      for (const sys of order) {
        only(sys.inst);
        const n = mixedRows(sys.name, o.connections);
        const target = { url: sys.inst.url, pid: sys.inst.pid, next: next(sys) };
        await cold(sys);
        const m = await measureMax(rows, n.max, target, o.durationS, o.connections, progress);
        await sys.after();
        byRep[sys.name] = { maxRps: m.rps, p50: NaN, p99: NaN };
        for (const rate of rates) {
          await cold(sys);
          const r = await measureOpen(rows, n.open(rate), target, rate, o.durationS, progress);
          if (rate === 500) Object.assign(byRep[sys.name]!, { p50: r.p50, p99: r.p99 });
          await sys.after();
        }
      }
      const p = byRep[PROJECT]!;
      const q = byRep[PEER]!;
      rows.ratio(FIG.rps, p.maxRps / q.maxRps);
      rows.ratio(FIG.p99, p.p99 / q.p99);
      rows.ratio(FIG.spread, p.p99 / p.p50);
    }

    const maxRss = (sys: string) => {
      const n = mixedRows(sys, o.connections);
      const v = [n.max, ...rates.map(n.open)].flatMap((name) => rows.rows.get(name)!.runs.map((r) => r.maxRssMb ?? NaN)).filter((x) => Number.isFinite(x));
      return v.length > 0 ? Math.max(...v) : NaN;
    };
    rows.ratio(FIG.rssProject, maxRss(PROJECT));
    rows.ratio(FIG.rssPeer, maxRss(PEER));
    rows.ratio(FIG.errors, errorRate(rows));
  } catch (err) {
    failed = true;
    console.error('bench --peers: failed:', err instanceof Error ? err.stack : err);
    for (const inst of stoppable) console.error(`--- pid ${inst.pid} output (tail) ---\n${inst.output().slice(-4000)}`);
  } finally {
    for (const inst of stoppable) await inst.stop().catch(() => undefined);
    for (const prefix of [projectPrefix, peerPrefix]) {
      const n = await deleteKeys(redis, `${prefix}*`).catch(() => -1);
      progress(`redis: deleted ${n} keys under ${prefix}`);
    }
    redis.disconnect();
  }

  const summaries = [...rows.rows.values()].filter((r) => r.runs.length > 0 || r.ratios.length > 0).map((r) => summarise(r));
  const printed = printTables(summaries);
  console.log(`\n${printed}\n`);
  const problems = summaries.flatMap((s) => s.problems.map((p) => `${s.name}: ${p}`));
  for (const p of problems) console.log(`PROBLEM ${p}`);
  console.log(
    `Both systems on one PostgreSQL database and one Redis (key prefixes ${PROJECT}: task-api-bench:<pid>:, ${PEER}: seed-stack-bench:<pid>:), each alone while measured (the other SIGSTOPped), order alternating; rate limiting ON in both with quotas no run reaches; both log every request at info (to /dev/null).`,
  );
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const meta = { ...facts, mode: 'peers', peer: path.relative(ROOT, PEER_DIR), peerUsers: users, openRates: rates, loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)), startedAt: new Date(started).toISOString(), seconds: round((Date.now() - started) / 1000, 1), failed, problems };
  const json = writeJson(o.outDir, stamp, { meta, rows: summaries, raw: [...rows.rows.values()] });
  const html = writeHtml(o.outDir, stamp, summaries, meta, printed);
  console.log(`results: ${json}\n         ${html}\n         ${path.join(o.outDir, 'latest.json')}`);
  return failed || problems.length > 0 ? 1 : 0;
}
