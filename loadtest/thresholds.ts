// Pass/fail criteria, k6-style: `[step:<name>:]<metric> <op> <number>[ms|s]`.

export type Op = '<' | '<=' | '>' | '>=' | '==';

export interface Threshold {
  expression: string;
  /** undefined: over every request of the run. */
  step: string | undefined;
  metric: Metric;
  op: Op;
  value: number;
  source: 'default' | 'flag';
}

const LATENCY = ['min', 'avg', 'p50', 'p90', 'p95', 'p99', 'max'] as const;
const PER_STEP = ['http_req_failed', 'http_reqs', 'errors', 'rate_limited', 'rps', ...LATENCY] as const;
const RUN_ONLY = ['vus_dropped', 'vus_abandoned', 'vus_failed', 'requests_aborted'] as const;
type Latency = (typeof LATENCY)[number];
export type Metric = (typeof PER_STEP)[number] | (typeof RUN_ONLY)[number];

export const METRICS_HELP = `  http_req_failed      share of requests that failed, 0-1 (network error, timeout, non-2xx incl. 429)
  http_reqs            number of requests            errors        number of failed requests
  rate_limited         number of 429 answers         rps           requests per second
  min avg p50 p90 p95 p99 max
                       latency in ms of answered requests (a value may end in ms or s)
  vus_dropped vus_abandoned vus_failed requests_aborted
                       whole run only: arrivals over --max-vus, VUs cut by the hard limit, VUs
                       that saw at least one failed request, requests cut by the hard limit
  Prefix step:<name>: for one scenario step (not for the whole-run-only metrics).`;

export const DEFAULT_THRESHOLDS = ['http_req_failed<0.01', 'p95<500', 'p99<1500'];

/** The parsed threshold, or a message saying what is wrong with it. */
export function parseThreshold(text: string, steps: readonly string[], source: Threshold['source'] = 'flag'): Threshold | string {
  const m = /^\s*(?:step:([A-Za-z0-9_-]+):)?([a-z_0-9]+)\s*(<=|>=|==|<|>)\s*(-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*(ms|s)?\s*$/.exec(text);
  if (!m) return `expected [step:<name>:]<metric><op><number>, e.g. p95<500, got "${text}"`;
  const [, step, metric = '', op = '<', raw = '0', unit] = m;
  const known = [...PER_STEP, ...RUN_ONLY] as readonly string[];
  if (!known.includes(metric)) return `unknown metric "${metric}" in "${text}" (known: ${known.join(', ')})`;
  if (step !== undefined && !steps.includes(step)) return `unknown step "${step}" in "${text}" (steps: ${steps.join(', ')})`;
  if (step !== undefined && (RUN_ONLY as readonly string[]).includes(metric)) return `${metric} is for the whole run, not a step, in "${text}"`;
  const isLatency = (LATENCY as readonly string[]).includes(metric);
  if (unit !== undefined && !isLatency) return `a unit (${unit}) only fits latency metrics, in "${text}"`;
  const value = Number(raw) * (unit === 's' ? 1000 : 1);
  return { expression: text.replace(/\s+/g, ''), step, metric: metric as Metric, op: op as Op, value, source };
}

/** The defaults whose metric (and step) no flag names, followed by the flags' thresholds. */
export function effectiveThresholds(fromFlags: readonly Threshold[], steps: readonly string[]): Threshold[] {
  const defaults = DEFAULT_THRESHOLDS.map((d) => parseThreshold(d, steps, 'default') as Threshold);
  const named = (t: Threshold) => `${t.step ?? ''}:${t.metric}`;
  const overridden = new Set(fromFlags.map(named));
  return [...defaults.filter((d) => !overridden.has(named(d))), ...fromFlags];
}

/** What a threshold is evaluated against. */
export interface MetricSource {
  overall: MetricValues;
  steps: Record<string, MetricValues>;
  run: { vus_dropped: number; vus_abandoned: number; vus_failed: number; requests_aborted: number };
}

export interface MetricValues {
  count: number;
  errors: number;
  rateLimited: number;
  rps: number;
  latencyMs: Record<Latency, number> | null;
}

export interface ThresholdResult {
  expression: string;
  source: Threshold['source'];
  /** The measured value; null when there was none (no requests, or none answered). */
  actual: number | null;
  ok: boolean;
}

function valueOf(t: Threshold, src: MetricSource): number | null {
  const metric = t.metric;
  switch (metric) {
    case 'vus_dropped':
    case 'vus_abandoned':
    case 'vus_failed':
    case 'requests_aborted':
      return src.run[metric];
    case 'http_req_failed':
    case 'http_reqs':
    case 'errors':
    case 'rate_limited':
    case 'rps':
    case 'min':
    case 'avg':
    case 'p50':
    case 'p90':
    case 'p95':
    case 'p99':
    case 'max': {
      const v = t.step === undefined ? src.overall : src.steps[t.step];
      if (!v) return null;
      if (metric === 'http_req_failed') return v.count === 0 ? null : v.errors / v.count;
      if (metric === 'http_reqs') return v.count;
      if (metric === 'errors') return v.errors;
      if (metric === 'rate_limited') return v.rateLimited;
      if (metric === 'rps') return v.rps;
      return v.latencyMs ? v.latencyMs[metric] : null;
    }
  }
}

function holds(actual: number, op: Op, value: number): boolean {
  switch (op) {
    case '<':
      return actual < value;
    case '<=':
      return actual <= value;
    case '>':
      return actual > value;
    case '>=':
      return actual >= value;
    case '==':
      return actual === value;
  }
}

/** A metric without data fails: a run with no answers must not pass a latency criterion. */
export function evaluate(thresholds: readonly Threshold[], src: MetricSource): ThresholdResult[] {
  return thresholds.map((t) => {
    const actual = valueOf(t, src);
    return { expression: t.expression, source: t.source, actual, ok: actual !== null && holds(actual, t.op, t.value) };
  });
}
