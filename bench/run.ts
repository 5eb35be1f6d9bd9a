// npm run bench: ceilings and the API, same machine, same run; ratios against performance.md's bars.
// See bench/options.ts for the flags (--quick, --scale, --duration, --connections, --runs, --out,
// --peers, --topology, --split-only, --no-split, --shards-only, --no-shards). The default run ends
// with the split-vs-monolith and the 1-vs-3-shards comparisons of bench/topology.ts (clusters of
// `task-api cluster`, after the suite's own instances have stopped); the --quick smoke run leaves
// them out.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ceilingPools } from './api.js';
import { PGBENCH, writeSpec } from './ceilings.js';
import { parseOptions, USAGE, UsageError, type Options } from './options.js';
import { runPeers } from './peers.js';
import { buildPools } from './pools.js';
import { installExitHandlers, killAll, ROOT } from './procs.js';
import { writeHtml, type HtmlSection } from './report-html.js';
import { Rows, summarise, table, writeJson, type RowSummary } from './report.js';
import { DEEP, runScale } from './scale.js';
import { deleteKeys, drainWithWorker, login, migrate, newSigningKey, recreateDatabase, redisClient, seed, startApi, type ApiInstance } from './setup.js';
import { captureAll } from './sql-capture.js';
import { round } from './stats.js';
import { defineRows, ROW, runSuite } from './suite.js';
import { runTopology, shardComparison, splitComparison, type ShardComparison, type SplitComparison } from './topology.js';

const started = Date.now();
const progress = (msg: string) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}`);

function machine(o: Options) {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined;
    }
  };
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryMb: Math.round(os.totalmem() / 1048576),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: os.loadavg().map((x) => round(x, 2)),
    gitCommit: git(['rev-parse', 'HEAD']),
    gitDirty: git(['status', '--porcelain', '--untracked-files=no']) ? true : undefined,
    settings: { quick: o.quick, durationS: o.durationS, connections: o.connections, runs: o.runs, users: o.users, tasksPerUser: o.tasksPerUser, poolMax: o.poolMax },
  };
}

async function main(o: Options): Promise<number> {
  for (const f of ['dist/cli.js', 'dist/operations/seed.js', 'build/bench/db-ceiling-worker.js']) {
    if (!existsSync(path.join(ROOT, f))) throw new Error(`${f} is missing: run npm run build:tools first`);
  }
  installExitHandlers();
  const facts = machine(o);
  if (o.peers) {
    progress(`${facts.cpus} cpus, node ${facts.node}, --peers ${o.quick ? 'quick' : 'full'} run: ${o.runs} x ${o.durationS} s rows, ${o.connections} connections`);
    return runPeers(o, facts, progress, started);
  }
  if (o.topology || o.splitOnly || o.shardsOnly) {
    progress(`${facts.cpus} cpus, node ${facts.node}, --${o.topology ? 'topology' : o.splitOnly ? 'split-only' : 'shards-only'} ${o.quick ? 'quick' : 'full'} run: ${o.runs} x ${o.durationS} s rows, ${o.connections} connections`);
    return runTopology(o, facts, progress, started);
  }
  // The comparisons at the end need the cluster's programs: say so now, not after the suite.
  if (o.split || o.shards) await requireClusterPrograms();
  progress(`${facts.cpus} cpus, node ${facts.node}, ${o.quick ? 'quick' : 'full'} run: ${o.runs} x ${o.durationS} s rows, ${o.connections} connections`);
  const redisPrefix = `task-api-bench:${process.pid}:`;
  const redis = redisClient(o.redisUrl);
  const rows = new Rows();
  const instances: ApiInstance[] = [];
  const settings = { databaseUrl: o.databaseUrl, redisUrl: o.redisUrl, redisPrefix, poolMax: o.poolMax, jwtPrivateKey: newSigningKey() };
  let failed = false;
  let capturedSql: Record<string, { transaction: boolean; statements: string[] }> = {};
  let split: SplitComparison | undefined;
  let shards: ShardComparison | undefined;
  try {
    if (!o.scaleOnly) {
      progress(`database ${o.databaseUrl}: drop, create, migrate, seed ${o.users} users x ${o.tasksPerUser} tasks`);
      await recreateDatabase(o.databaseUrl);
      await migrate(o.databaseUrl);
      const seeded = await seed(o.databaseUrl, o.users, o.tasksPerUser, 'bench', 3600_000);
      progress(`seeded ${seeded.tasks} tasks in ${seeded.seconds} s`);

      const api = await startApi({ ...settings, metrics: true, cache: true, relay: false });
      instances.push(api);
      const apiNoMetrics = o.metricsOff ? await startApi({ ...settings, metrics: false, cache: true, relay: false }) : undefined;
      if (apiNoMetrics) instances.push(apiNoMetrics);
      // The relay and the consumers, as `task-api worker`: paused while rows are measured, run
      // between them to publish what the write rows wrote.
      const worker = await startApi({ ...settings, metrics: true, cache: true, relay: true, command: 'worker' });
      instances.push(worker);
      worker.pause();
      progress(`API pid ${api.pid} at ${api.url}${apiNoMetrics ? `, metrics-off pid ${apiNoMetrics.pid}` : ''}; logging ${o.users} users in`);
      const sessions = await login(api.url, 'bench', o.users);
      const pools = await buildPools(o.databaseUrl, sessions);
      progress(`pools: ${pools.pages.length} list pages, ${pools.gets.length} tasks to get, ${pools.patches.length} to patch`);

      const probe = pools.pages.find((p) => p.keyset)!;
      const probeTask = pools.patches.find((t) => t.user === probe.user) ?? pools.patches[0]!;
      const captured = await captureAll({
        databaseUrl: o.databaseUrl,
        poolMax: o.poolMax,
        userId: sessions[probeTask.user]!.userId,
        taskId: probeTask.taskId,
        keyset: probe.user === probeTask.user ? probe.keyset! : pools.pages.find((p) => p.keyset && p.user === probeTask.user)!.keyset!,
        cursor: probe.user === probeTask.user ? probe.cursor! : pools.pages.find((p) => p.keyset && p.user === probeTask.user)!.cursor!,
      });
      for (const c of Object.values(captured)) {
        progress(`captured ${c.name}${c.transaction ? ' (one transaction)' : ''}: ${c.statements.map((st) => st.text.replace(/\s+/g, ' ').slice(0, 60)).join(' | ')}`);
      }
      capturedSql = Object.fromEntries(Object.values(captured).map((c) => [c.name, { transaction: c.transaction, statements: c.statements.map((st) => st.text) }]));
      const cp = ceilingPools(pools);
      const spec = (templates: string[], pool: typeof cp.list) =>
        writeSpec({
          databaseUrl: o.databaseUrl,
          poolMax: o.poolMax,
          concurrency: o.connections,
          durationMs: o.durationS * 1000,
          templates: Object.fromEntries(templates.map((t) => [t, captured[t]!])),
          pool,
        });
      const specs = { list: spec(['list', 'listCursor'], cp.list), get: spec(['get'], cp.get), create: spec(['create'], cp.create), patch: spec(['patch'], cp.patch) };

      defineRows(rows, apiNoMetrics !== undefined, o.pgbench);
      await runSuite(
        {
          rows,
          api,
          apiNoMetrics,
          pools,
          specs,
          pgbenchList: o.pgbench && PGBENCH ? captured.list!.statements[0] : undefined,
          databaseUrl: o.databaseUrl,
          redis,
          redisPrefix,
          durationS: o.durationS,
          connections: o.connections,
          poolMax: o.poolMax,
          runs: o.runs,
          drainOutbox: () => drainWithWorker(worker, o.databaseUrl, progress),
        },
        progress,
      );

      // The bar is read under the mixed load ("one instance under the mixed load"); the largest
      // figure of any row is reported beside it.
      const finiteMax = (xs: (number | null | undefined)[]) => Math.max(...xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)));
      const mixed = rows.rows.get(ROW.mixed)!;
      const rssFigure = 'max RSS under the mixed load (MB)';
      rows.define(rssFigure, 'figure', { bar: { op: '<', value: 150, label: 'resident memory of one instance under load' } });
      rows.ratio(rssFigure, finiteMax(mixed.runs.map((x) => x.maxRssMb)));
      const rssAnyFigure = 'max RSS in any row (MB)';
      rows.define(rssAnyFigure, 'figure');
      rows.ratio(rssAnyFigure, finiteMax([...rows.rows.values()].filter((r) => r.kind === 'api').flatMap((r) => r.runs.map((x) => x.maxRssMb))));
      const mixedFigure = 'error rate, mixed load';
      rows.define(mixedFigure, 'figure', { bar: { op: '==', value: 0, label: 'error rate under the mixed load scenario' } });
      rows.ratio(mixedFigure, mixed.runs.reduce((a, r) => a + r.errors, 0) / Math.max(1, mixed.runs.reduce((a, r) => a + r.requests, 0)));
      if (apiNoMetrics) {
        for (const [on, off, label] of [
          [ROW.health, ROW.healthOff, 'metrics overhead, /health/live'],
          [ROW.hit, ROW.hitOff, 'metrics overhead, list HIT'],
        ] as const) {
          const a = rows.rows.get(on)!.runs;
          const b = rows.rows.get(off)!.runs;
          rows.define(label, 'figure', { note: '1 - (req/s metrics on / req/s metrics off), per repetition' });
          for (let i = 0; i < Math.min(a.length, b.length); i++) rows.ratio(label, 1 - a[i]!.rps / b[i]!.rps);
        }
      }
    }
    for (const inst of instances.splice(0)) await inst.stop();

    if (o.scale) await runScale(o, settings, rows, progress);

    // Split services behind the gateway vs the monolith behind NGINX (bench/topology.ts): each on
    // its own cluster, alone on the machine (the suite's instances have stopped).
    if (o.split) {
      split = splitComparison(o.split, o.poolMax, rows, progress);
      progress(`split comparison: ${o.split.runs} x ${o.split.durationS} s rows, ${o.split.connections} connections, ${o.split.instances} instance(s) per role`);
      for (let rep = 1; rep <= o.split.runs; rep++) await split.repetition(rep);
      split.finish();
    }
    // The monolith's tasks data on 1 shard vs 3 (bench/topology.ts), the same way.
    if (o.shards) {
      shards = shardComparison(o.shards, o.poolMax, rows, progress);
      progress(`shard comparison: ${o.shards.runs} x ${o.shards.durationS} s rows, ${o.shards.connections} connections, ${o.shards.instances} instances, 1 vs ${o.shards.shards} shards`);
      for (let rep = 1; rep <= o.shards.runs; rep++) await shards.repetition(rep);
      shards.finish();
    }
  } catch (err) {
    failed = true;
    console.error('bench: failed:', err instanceof Error ? err.stack : err);
    for (const inst of instances) console.error(`--- API pid ${inst.pid} output (tail) ---\n${inst.output().slice(-4000)}`);
  } finally {
    for (const inst of instances) await inst.stop().catch(() => undefined);
    const n = await deleteKeys(redis, `${redisPrefix}*`).catch(() => -1);
    progress(`redis: deleted ${n} keys under ${redisPrefix}`);
    redis.disconnect();
  }

  const expect: Record<string, 'HIT' | 'MISS'> = { [ROW.hit]: 'HIT', [ROW.hitOff]: 'HIT', [ROW.miss]: 'MISS', [ROW.get]: 'MISS' };
  const summaries: RowSummary[] = [...rows.rows.values()].filter((r) => r.runs.length > 0 || r.ratios.length > 0).map((r) => summarise(r, expect[r.name]));
  // The shard comparison's rows and figures go in a section of their own ("1 vs 3 shards").
  const inSection = shards?.names() ?? new Set<string>();
  const mainRows = summaries.filter((r) => !inSection.has(r.name));
  const sections: HtmlSection[] = shards ? [shards.htmlSection(summaries)] : [];
  const printed = [table(mainRows), ...(shards ? [shards.section(summaries)] : [])].join('\n\n');
  console.log(`\n${printed}\n`);
  const problems = summaries.flatMap((s) => s.problems.map((p) => `${s.name}: ${p}`));
  for (const p of problems) console.log(`PROBLEM ${p}`);
  console.log('Rate limiting was ON (Redis-backed, quotas raised so that nothing is refused): its per-request cost is in every limited row.');
  if (split) console.log(split.notes().join('\n'));
  else if (!o.scaleOnly) console.log(`No split comparison in this run (${o.quick ? '--quick' : '--no-split'}): \`npm run bench -- --split-only\` measures it alone.`);
  if (shards) console.log(shards.notes().join('\n'));
  else if (!o.scaleOnly) console.log(`No shard comparison in this run (${o.quick ? '--quick' : '--no-shards'}): \`npm run bench -- --shards-only\` measures it alone.`);
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const meta = {
    ...facts,
    loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
    startedAt: new Date(started).toISOString(),
    seconds: round((Date.now() - started) / 1000, 1),
    failed,
    problems,
    scale: o.scale ? DEEP : undefined,
    split: split?.meta(),
    shards: shards?.meta(),
  };
  const json = writeJson(o.outDir, stamp, { meta, rows: summaries, raw: [...rows.rows.values()], sql: capturedSql });
  const html = writeHtml(o.outDir, stamp, mainRows, meta, printed, sections);
  console.log(`results: ${json}\n         ${html}\n         ${path.join(o.outDir, 'latest.json')}`);
  return failed || problems.length > 0 ? 1 : 0;
}

/** Throws naming what `task-api cluster` needs and is not installed (dist/'s own check), with the way out. */
async function requireClusterPrograms(): Promise<void> {
  const { requireBinaries } = (await import(pathToFileURL(path.join(ROOT, 'dist/operations/cluster/binaries.js')).href)) as { requireBinaries: (pathEnv: string) => unknown };
  try {
    requireBinaries(process.env.PATH ?? '');
  } catch (err) {
    throw new Error(
      `the default run ends with the split-vs-monolith and the 1-vs-3-shards comparisons on \`task-api cluster\`: ${err instanceof Error ? err.message : String(err)}; install them, or leave the comparisons out with --no-split --no-shards`,
    );
  }
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    if (err.message) console.error(err.message);
    console.error(USAGE);
    process.exit(2);
  }
  throw err;
}
main(options).then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (err: unknown) => {
    console.error(err);
    killAll();
    process.exit(1);
  },
);
