// Command-line flags of the bench.
import path from 'node:path';
import { ROOT } from './procs.js';
import type { ShardRun, SplitRun } from './topology.js';

export interface Options {
  quick: boolean;
  scale: boolean;
  /** Only the scale measurements (no ceilings, no API rows). */
  scaleOnly: boolean;
  scaleMax: number;
  durationS: number;
  connections: number;
  runs: number;
  users: number;
  tasksPerUser: number;
  outDir: string;
  databaseUrl: string;
  redisUrl: string;
  poolMax: number;
  metricsOff: boolean;
  pgbench: boolean;
  /** The seed's stack (bench/peers/seed-stack) against task-api instead of the suite (bench/peers.ts). */
  peers: boolean;
  /** 1 vs 3 instances behind NGINX, and direct vs through PgBouncer (`task-api cluster`; bench/topology.ts). */
  topology: boolean;
  /** Only the split-vs-monolith comparison (--split-only; bench/topology.ts, part 3). */
  splitOnly: boolean;
  /** Only the 1-vs-3-shards comparison (--shards-only; bench/topology.ts, part 4). */
  shardsOnly: boolean;
  /**
   * The split-vs-monolith comparison: after the suite in the default run, inside --topology, alone
   * with --split-only; undefined when the run leaves it out (--no-split, --peers, --scale-only,
   * and the suite's --quick smoke run, which stays cheap).
   */
  split: SplitRun | undefined;
  /**
   * The 1-vs-3-shards comparison: as `split`, after it (default run, --topology), alone with
   * --shards-only; undefined when the run leaves it out (--no-shards, --split-only, --peers,
   * --scale-only, and the suite's --quick smoke run).
   */
  shards: ShardRun | undefined;
}

export const USAGE = `usage: node build/bench/run.js [options]
  --quick              CI smoke run: 1 repetition, ~2 s rows, small seed, no scale, no metrics-off instance,
                       and the default run's split and shard comparisons left out
  --duration S         seconds per row (default 10; quick 2)
  --connections C      concurrent connections / in-flight operations (default 50)
  --runs R             repetitions; each ratio is the median (default 3; quick 1)
  --users N            seeded users (default 500; quick 100)
  --tasks-per-user M   seeded tasks per user (default 2000; quick 1000)
  --out DIR            results directory (default bench/results)
  --scale              also measure list p99 at 10k / 1M / 10M tasks and page 500 vs page 1
  --scale-max N        cap the scale steps at N total tasks (e.g. 1000000)
  --scale-only         only the --scale measurements
  --no-pgbench         skip the pgbench reference row
  --peers              task-api against the seed's stack (bench/peers/seed-stack) on the mixed
                       80/15/5 workload of 50 users: closed max, open 500/s and 700/s, memory
                       (defaults then: 15 s rows, 32 connections; quick 2 s rows)
  --topology           the same workload on \`task-api cluster\`: 1 vs 3 instances behind NGINX, then
                       one instance direct to the primary vs through PgBouncer (closed max, open
                       500/s; a fresh cluster per topology and repetition, seeded with --users
                       (default 50) x --tasks-per-user; defaults as --peers), then the split and
                       the shard comparisons below
  --split-only         only the split comparison: \`cluster start --split\` (gateway -> 4 services)
                       vs the monolith behind NGINX, the same instances per role, on the same
                       workload (defaults as --topology). The default run does it after the suite
                       (not with --quick), with 15 s rows and 32 connections unless given
  --split-instances N  instances per service of the split cluster, and of the monolith (default 2)
  --no-split           leave the split comparison out (default run, --topology)
  --shards-only        only the shard comparison: the monolith (2 instances behind NGINX) with
                       \`cluster start --shards 1\` vs \`--shards 3\`, on the same workload, seeded
                       the same way through the API (defaults as --topology); reports the rows
                       per shard after seeding. The default run does it after the split
                       comparison (not with --quick), as does --topology
  --no-shards          leave the shard comparison out (default run, --topology)
env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/task_api_bench; dropped and
     created at start), BENCH_REDIS_URL (default redis://127.0.0.1:6379), DATABASE_POOL_MAX (10),
     BENCH_TOPOLOGY_REPLICAS (1: --replicas of the topology and split clusters),
     BENCH_SHARDS_REPLICAS (0: --replicas of the shard comparison's clusters, per shard)`;

export class UsageError extends Error {}

export function parseOptions(argv: string[]): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new UsageError(`unexpected argument ${a}`);
    const name = m[1]!;
    const boolean = ['quick', 'scale', 'scale-only', 'no-pgbench', 'peers', 'topology', 'split-only', 'no-split', 'shards-only', 'no-shards', 'help'].includes(name);
    if (boolean) flags.set(name, true);
    else {
      const v = m[2] ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      flags.set(name, v);
    }
  }
  const known = ['quick', 'scale', 'scale-only', 'scale-max', 'duration', 'connections', 'runs', 'users', 'tasks-per-user', 'out', 'no-pgbench', 'peers', 'topology', 'split-only', 'split-instances', 'no-split', 'shards-only', 'no-shards', 'help'];
  for (const k of flags.keys()) if (!known.includes(k)) throw new UsageError(`unknown flag --${k}`);
  if (flags.has('help')) throw new UsageError('');
  const num = (name: string, dflt: number, min: number, max: number): number => {
    const v = flags.get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (typeof v !== 'string' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}`);
    return n;
  };
  const quick = flags.has('quick');
  const peers = flags.has('peers');
  const topology = flags.has('topology');
  const splitOnly = flags.has('split-only');
  const shardsOnly = flags.has('shards-only');
  if ([peers, topology, splitOnly, shardsOnly].filter(Boolean).length > 1) {
    throw new UsageError('--peers, --topology, --split-only and --shards-only are separate runs: give one (--topology includes the split and the shard comparisons)');
  }
  if (splitOnly && flags.has('no-split')) throw new UsageError('--split-only and --no-split contradict each other');
  if (shardsOnly && flags.has('no-shards')) throw new UsageError('--shards-only and --no-shards contradict each other');
  // These modes measure the mixed workload of 50 users (bench/mixed.ts) with the same defaults.
  const mixed = peers || topology || splitOnly || shardsOnly;
  const pool = Number(process.env.DATABASE_POOL_MAX ?? '10');
  const out = flags.get('out');
  const scaleOnly = flags.has('scale-only') && !quick && !mixed;
  const runs = Math.round(num('runs', quick ? 1 : 3, 1, 20));
  // --topology, --split-only and --shards-only seed every cluster they start: only the users the workload logs in, by default.
  const users = Math.round(num('users', topology || splitOnly || shardsOnly ? 50 : quick ? 100 : 500, 2, 100_000));
  // The split and shard comparisons: in the default run after the suite (whose --quick smoke
  // stays without them), with the mixed modes' row length and connections unless given, the
  // suite's repetitions; each seeded the same way through the public API.
  const comparison = {
    runs,
    durationS: num('duration', quick ? 2 : 15, 1, 600),
    connections: Math.round(num('connections', 32, 1, 1000)),
    users: Math.min(50, users), // the mixed workload's 50 (bench/mixed.ts MIXED_USERS)
    // Created through the public API, a request each (bench/topology.ts: seedThroughApi).
    tasksPerUser: quick ? 20 : 100,
  };
  const withSplit = !peers && !shardsOnly && !flags.has('no-split') && !scaleOnly && (topology || splitOnly || !quick);
  const split: SplitRun | undefined = withSplit ? { ...comparison, instances: Math.round(num('split-instances', 2, 1, 8)) } : undefined;
  const withShards = !peers && !splitOnly && !flags.has('no-shards') && !scaleOnly && (topology || shardsOnly || !quick);
  const shards: ShardRun | undefined = withShards ? { ...comparison, instances: 2, shards: 3 } : undefined;
  return {
    quick,
    scale: (flags.has('scale') || flags.has('scale-only')) && !quick && !mixed,
    scaleOnly,
    scaleMax: num('scale-max', 10_000_000, 10_000, 100_000_000),
    durationS: num('duration', quick ? 2 : mixed ? 15 : 10, 1, 600),
    connections: Math.round(num('connections', mixed ? 32 : 50, 1, 1000)),
    runs,
    users,
    tasksPerUser: Math.round(num('tasks-per-user', quick ? 1000 : 2000, 40, 100_000)),
    outDir: path.resolve(typeof out === 'string' ? out : path.join(ROOT, 'bench', 'results')),
    databaseUrl: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/task_api_bench',
    redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
    poolMax: Number.isInteger(pool) && pool >= 1 ? pool : 10,
    metricsOff: !quick,
    pgbench: !flags.has('no-pgbench'),
    peers,
    topology,
    splitOnly,
    split,
    shardsOnly,
    shards,
  };
}
