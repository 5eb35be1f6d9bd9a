// Command-line flags of `npm run chaos`, and the environment the run's cluster is started with.
// A bad flag is a UsageError naming it (exit 2).
import type { Topology } from './cluster.js';

export class UsageError extends Error {}

export interface Options {
  short: boolean;
  /** Seconds of load (the schedule may run past it to finish its rounds: see run.ts). */
  durationSeconds: number;
  maxRequests: number;
  clients: number;
  users: number;
  timeoutMs: number;
  thinkMs: number;
  /** Rounds of the fault table at least (each applicable fault once per round). */
  rounds: number;
  topology: Topology;
  /** Only these faults (by name); undefined: every applicable row. */
  faults: string[] | undefined;
  dir: string | undefined;
  keep: boolean;
  out: string | undefined;
  help: boolean;
}

export const HELP = `usage: npm run chaos -- [flags]      (or: node build/chaos/run.js [flags])

A Jepsen-style chaos run (see README, Chaos; docs/reliability.md): starts its own cluster
(task-api cluster start), runs a mixed load through NGINX (keyed creates with a marker in the
title, updates, reads) while a schedule of faults is injected and healed (kill -9 of an API
instance, a replica, PgBouncer, the Redis master, the worker, a RabbitMQ node, the Patroni leader;
SIGSTOP of the primary's PostgreSQL for longer than the client's timeout), waits for the outbox to drain, checks the
final state against every write the clients attempted, stops the cluster, and prints one JSON
object as the last line of stdout.

  --short            CI mode: about 60-90 s of load, each applicable fault once
  --duration S       seconds of load                                      [default 300; short 75]
  --rounds N         rounds of the fault table at least           [default 2; short 1; long runs
                     start more rounds while the duration leaves room]
  --max-requests N   stop the load after N requests                            [default 200000]
  --clients N        concurrent clients                                           [default 4]
  --users N          users registered up front (client i uses user i mod N)      [default 4]
  --timeout-ms MS    client timeout: a read without an answer by then is a hung read
                                                                                [default 10000]
  --think-ms MS      mean pause between one client's operations                  [default 50]
  --topology T       full (--redis-sentinel --ha --sync --rabbit-cluster --worker, each when
                     this build's cluster start has it) or basic (3 instances, 1 replica)
                                                                                [default full]
  --faults A,B       only these faults of the table (names as in the report)
  --dir D            the cluster's directory [default: a new temporary one, removed after]
  --keep             keep D (logs, state.json) after the run
  --out FILE         also write the full report (with examples of every loss) as JSON

Exit status: 0 no loss (acknowledgedMissing, eventsMissing, phantoms, duplicates and hungReads
all 0), 1 a loss or the run failed, 2 bad arguments.`;

const WITH_VALUE = new Set(['--duration', '--rounds', '--max-requests', '--clients', '--users', '--timeout-ms', '--think-ms', '--topology', '--faults', '--dir', '--out']);
const SWITCHES = new Set(['--short', '--keep', '--help', '-h']);

function int(flag: string, raw: string | undefined, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || n < min || n > max) throw new UsageError(`${flag}: expected an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

export function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (SWITCHES.has(flag)) {
      if (eq > 0) throw new UsageError(`${flag}: takes no value`);
      switches.add(flag === '-h' ? '--help' : flag);
    } else if (WITH_VALUE.has(flag)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === '') throw new UsageError(`${flag}: needs a value`);
      if (values.has(flag)) throw new UsageError(`${flag}: given more than once`);
      values.set(flag, value);
    } else {
      throw new UsageError(`${arg}: unknown flag (see --help)`);
    }
  }
  const short = switches.has('--short');
  const topology = values.get('--topology') ?? 'full';
  if (topology !== 'full' && topology !== 'basic') throw new UsageError(`--topology: expected full or basic, got "${topology}"`);
  const faults = values.get('--faults')?.split(',').filter(Boolean);
  return {
    short,
    durationSeconds: int('--duration', values.get('--duration'), short ? 75 : 300, 10, 7200),
    rounds: int('--rounds', values.get('--rounds'), short ? 1 : 2, 1, 100),
    maxRequests: int('--max-requests', values.get('--max-requests'), 200_000, 1, 10_000_000),
    clients: int('--clients', values.get('--clients'), 4, 1, 64),
    users: int('--users', values.get('--users'), 4, 1, 64),
    timeoutMs: int('--timeout-ms', values.get('--timeout-ms'), 10_000, 100, 600_000),
    thinkMs: int('--think-ms', values.get('--think-ms'), 50, 0, 60_000),
    topology,
    faults,
    dir: values.get('--dir'),
    keep: switches.has('--keep'),
    out: values.get('--out'),
    help: switches.has('--help'),
  };
}

// The load comes from one address: the edge's and the API's per-client limits lifted (as
// test/helpers/cluster.ts HIGH_LIMITS_ENV), the per-user task cap too; sessions outlive a long run.
const high = { points: 100000, duration: 60 };
export const CHAOS_CLUSTER_ENV: Record<string, string> = {
  EDGE_RATE_LIMIT: '100000',
  EDGE_RATE_BURST: '100000',
  RATE_LIMIT_POINTS: '1000000',
  RATE_LIMIT_DURATION: '60',
  RATE_LIMIT_POLICIES: JSON.stringify({ 'auth-ip': high, 'login-account-ip': high, 'login-account': high, 'password-change': high }),
  TASKS_PER_USER_MAX: '1000000',
  JWT_ACCESS_TTL_SECONDS: '14400',
  LOG_LEVEL: 'warn',
  // A claim whose instance was killed is taken over after this (the create is found by its id, derived from the key).
  IDEMPOTENCY_LEASE_MS: '3000',
};

/** The environment of every cluster command: PATH (the only variable read from this process's environment) and the lifted limits. */
export function clusterEnv(environment: NodeJS.ProcessEnv): Record<string, string> {
  return { PATH: environment.PATH ?? '/usr/local/bin:/usr/bin:/bin', ...CHAOS_CLUSTER_ENV };
}
