// Command-line flags of `npm run loadtest`. A bad flag is a UsageError naming it (exit 2).
import path from 'node:path';
import { readState } from '../src/operations/cluster/state.js';
import { parsePhase, type Phase } from './arrivals.js';
import { METRICS_HELP, parseThreshold, type Threshold } from './thresholds.js';
import { STEPS } from './scenario.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Options {
  /** Target base URL; undefined: start a local instance. */
  url: string | undefined;
  phases: Phase[];
  maxVus: number;
  /** Seconds after the last arrival that VUs in flight may take before they are abandoned. */
  graceSeconds: number;
  thinkMs: number;
  timeoutMs: number;
  tasksPerUser: number;
  refreshRatio: number;
  thresholds: Threshold[];
  out: string | undefined;
  smoke: boolean;
  quiet: boolean;
  serverEnv: Record<string, string>;
  help: boolean;
}

export const HELP = `usage: npm run loadtest -- [flags]      (or: node build/loadtest/run.js [flags])

Scenario-based load test of task-api with an open arrival model (as k6's ramping-arrival-rate
or Artillery's phases): new virtual users (VUs) arrive at a rate, whatever the server's speed.
Each VU registers, logs in and then uses the API like a person, with think time between steps
(see loadtest/scenario.ts): list, create tasks, filter, open one, complete one, delete one,
maybe refresh its token, list again.

Target
  --url URL            base URL of a running instance, e.g. http://127.0.0.1:3000. Without it a
                       local instance is started: node dist/cli.js serve on a free loopback port
                       (NODE_ENV=production, LOG_LEVEL=warn, SHUTDOWN_DRAIN_MS=0, DATA_DIR a temp
                       dir; DATABASE_URL and REDIS_URL from the environment when set, else the
                       embedded PGlite and memory stores) and stopped at the end. Its rate limits
                       are raised so one IP can drive the load (see README, Load testing).
  --server-env K=V     extra environment for the local instance (repeatable; wins over the above)
  --cluster DIR        the public URL (NGINX) of the cluster "task-api cluster start --dir DIR"
                       runs, as "cluster status" reports it; start it with EDGE_RATE_LIMIT,
                       EDGE_RATE_BURST and RATE_LIMIT_POINTS lifted (README, Scaling out)

Load
  --rate R             arrivals (new VUs) per second                               [default 5]
  --duration S         seconds of arrivals                                         [default 30]
  --ramp-from R0       ramp linearly from R0 to --rate over --duration        [default: no ramp]
  --phase S:R|S:R0-R   a phase of S seconds at R arrivals/s, or ramping R0 to R (repeatable; in
                       order; replaces --rate/--duration/--ramp-from)
  --max-vus N          at most N VUs at once; arrivals beyond are dropped and counted [default 100]
  --grace S            after the last arrival, VUs still running get S seconds, then are
                       abandoned (their requests aborted) and counted             [default 30]
  --think-ms MS        mean think time between steps, randomised uniformly ±50%   [default 500]
  --timeout-ms MS      a request without a full answer after MS counts as a timeout error
                                                                                [default 10000]
  --tasks N            tasks each VU creates (1-20)                                [default 3]
  --refresh-ratio P    share of VUs that refresh their token (0-1)               [default 0.5]

Checks and output
  --threshold EXPR     pass/fail criterion, repeatable, e.g. 'p95<500' 'http_req_failed<0.01'
                       'step:login:p95<800'. A threshold replaces the default on the same metric;
                       the other defaults stay. Defaults: http_req_failed<0.01, p95<500, p99<1500.
  --out FILE           JSON results     [default bench/results/loadtest-<timestamp>.json]
  --smoke              short run for CI: 5 s at 2 arrivals/s, max 10 VUs, think 100 ms
                       (flags given explicitly still win)
  --quiet              no progress lines on stderr
  --help               this text

Threshold metrics (EXPR = [step:<name>:]<metric> <op> <number>[ms|s], op one of < <= > >= ==):
${METRICS_HELP}
  Steps: ${STEPS.join(', ')}.
  A metric without data (e.g. no answered request, so no latency) fails its threshold.

Counting: a request fails on a network error, a timeout or a non-2xx status; a 429 counts as a
failure and also under rate_limited. Latency is measured to the end of the response body, for
answered requests only. Requests cut by the hard limit (--grace) are reported as aborted.

Exit status: 0 every threshold passed, 1 a threshold crossed (or the run crashed),
2 bad arguments.`;

const SMOKE = { phases: [{ seconds: 5, from: 2, to: 2 }], maxVus: 10, thinkMs: 100, graceSeconds: 30 };

function number(flag: string, raw: string, opts: { min?: number; max?: number; integer?: boolean; above?: number } = {}): number {
  const n = Number(raw);
  const bad = (what: string) => new UsageError(`${flag}: expected ${what}, got "${raw}"`);
  if (raw.trim() === '' || !Number.isFinite(n)) throw bad('a number');
  if (opts.integer && !Number.isInteger(n)) throw bad('an integer');
  if (opts.above !== undefined && !(n > opts.above)) throw bad(`a number > ${opts.above}`);
  if (opts.min !== undefined && n < opts.min) throw bad(`a number >= ${opts.min}`);
  if (opts.max !== undefined && n > opts.max) throw bad(`a number <= ${opts.max}`);
  return n;
}

const FLAGS_WITH_VALUE = new Set([
  '--url', '--cluster', '--server-env', '--rate', '--duration', '--ramp-from', '--phase', '--max-vus', '--grace',
  '--think-ms', '--timeout-ms', '--tasks', '--refresh-ratio', '--threshold', '--out',
]);
const BOOLEAN_FLAGS = new Set(['--smoke', '--quiet', '--help', '-h']);

export function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, string[]>();
  const booleans = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (BOOLEAN_FLAGS.has(flag)) {
      if (eq > 0) throw new UsageError(`${flag}: takes no value`);
      booleans.add(flag === '-h' ? '--help' : flag);
      continue;
    }
    if (!FLAGS_WITH_VALUE.has(flag)) throw new UsageError(`${flag}: unknown ${flag.startsWith('-') ? 'flag' : 'argument'} (see --help)`);
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || (value.startsWith('--') && value.length > 2)) throw new UsageError(`${flag}: needs a value`);
      i += 1;
    }
    values.set(flag, [...(values.get(flag) ?? []), value]);
  }
  const single = (flag: string): string | undefined => {
    const list = values.get(flag);
    if (list && list.length > 1) throw new UsageError(`${flag}: given more than once`);
    return list?.[0];
  };
  const num = (flag: string, dflt: number, opts?: Parameters<typeof number>[2]) => {
    const raw = single(flag);
    return raw === undefined ? dflt : number(flag, raw, opts);
  };
  const smoke = booleans.has('--smoke');

  let url = single('--url');
  const cluster = single('--cluster');
  if (cluster !== undefined) {
    if (url !== undefined) throw new UsageError('--cluster: cannot be combined with --url');
    try {
      url = readState(path.resolve(cluster)).publicUrl;
    } catch (err) {
      throw new UsageError(`--cluster: ${(err as Error).message}`);
    }
  }
  if (url !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url: not a URL: "${url}"`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url: must be http:// or https://, got "${url}"`);
    url = parsed.toString().replace(/\/+$/, '');
  }

  const phaseArgs = values.get('--phase') ?? [];
  let phases: Phase[];
  if (phaseArgs.length > 0) {
    for (const f of ['--rate', '--duration', '--ramp-from']) {
      if (values.has(f)) throw new UsageError(`${f}: cannot be combined with --phase`);
    }
    phases = phaseArgs.map((p) => {
      const phase = parsePhase(p);
      if (typeof phase === 'string') throw new UsageError(`--phase: ${phase}`);
      return phase;
    });
  } else {
    const base = smoke ? SMOKE.phases[0]! : { seconds: 30, from: 5, to: 5 };
    const rate = num('--rate', base.to, { above: 0, max: 10000 });
    const seconds = num('--duration', base.seconds, { above: 0, max: 86400 });
    const from = num('--ramp-from', rate, { min: 0, max: 10000 });
    phases = [{ seconds, from, to: rate }];
  }

  const serverEnv: Record<string, string> = {};
  for (const kv of values.get('--server-env') ?? []) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/s.exec(kv);
    if (!m) throw new UsageError(`--server-env: expected KEY=VALUE, got "${kv}"`);
    serverEnv[m[1]!] = m[2]!;
  }
  if (url !== undefined && values.has('--server-env')) throw new UsageError('--server-env: only applies to the local instance (without --url)');

  const thresholds = (values.get('--threshold') ?? []).map((t) => {
    const parsed = parseThreshold(t, STEPS);
    if (typeof parsed === 'string') throw new UsageError(`--threshold: ${parsed}`);
    return parsed;
  });

  const out = single('--out');
  if (out === '') throw new UsageError('--out: needs a file name');

  return {
    url,
    phases,
    maxVus: num('--max-vus', smoke ? SMOKE.maxVus : 100, { integer: true, min: 1, max: 100000 }),
    graceSeconds: num('--grace', smoke ? SMOKE.graceSeconds : 30, { min: 0, max: 3600 }),
    thinkMs: num('--think-ms', smoke ? SMOKE.thinkMs : 500, { min: 0, max: 600000 }),
    timeoutMs: num('--timeout-ms', 10000, { integer: true, min: 1, max: 600000 }),
    tasksPerUser: num('--tasks', 3, { integer: true, min: 1, max: 20 }),
    refreshRatio: num('--refresh-ratio', 0.5, { min: 0, max: 1 }),
    thresholds,
    out,
    smoke,
    quiet: booleans.has('--quiet'),
    serverEnv,
    help: booleans.has('--help'),
  };
}
