// The end of a run: the JSON document (--out) and the summary table with every threshold.
import { describePhases, expectedArrivals } from './arrivals.js';
import type { RunOutcome } from './runner.js';
import type { Options } from './options.js';
import type { Recorder, StepReport } from './stats.js';
import type { MetricSource, ThresholdResult } from './thresholds.js';

export interface Target {
  url: string;
  local: boolean;
  stack?: { database: string; redis: string };
  serverSettings?: Record<string, string>;
}

export interface ReportInput {
  startedAt: Date;
  finishedAt: Date;
  target: Target;
  options: Pick<Options, 'phases' | 'maxVus' | 'graceSeconds' | 'thinkMs' | 'timeoutMs' | 'tasksPerUser' | 'refreshRatio' | 'smoke'>;
  outcome: RunOutcome;
  recorder: Recorder;
}

export interface LoadTestReport {
  tool: 'task-api-loadtest';
  startedAt: string;
  finishedAt: string;
  target: Target;
  options: ReportInput['options'] & { expectedArrivals: number; description: string };
  runId: string;
  ending: RunOutcome['ending'];
  elapsedSeconds: number;
  vus: RunOutcome['vus'];
  /** Successful POST /v1/auth/register (one per VU that got an account). */
  registrations: number;
  requests: StepReport & { aborted: number };
  steps: Record<string, StepReport>;
  perSecond: { second: number; requests: number; errors: number }[];
  crashSamples: string[];
  thresholds: ThresholdResult[];
  passed: boolean;
}

export function buildReport(input: ReportInput): Omit<LoadTestReport, 'thresholds' | 'passed'> {
  const elapsed = input.outcome.elapsedSeconds;
  const steps = Object.fromEntries([...input.recorder.steps.entries()].map(([name, s]) => [name, s.toJSON(elapsed)]));
  return {
    tool: 'task-api-loadtest',
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    target: input.target,
    options: { ...input.options, expectedArrivals: Math.round(expectedArrivals(input.options.phases)), description: describePhases(input.options.phases) },
    runId: input.outcome.runId,
    ending: input.outcome.ending,
    elapsedSeconds: Math.round(elapsed * 100) / 100,
    vus: input.outcome.vus,
    registrations: input.outcome.vus.registrations,
    requests: { ...input.recorder.overall.toJSON(elapsed), aborted: input.recorder.aborted },
    steps,
    perSecond: input.recorder.perSecond(),
    crashSamples: input.outcome.crashSamples,
  };
}

/** What thresholds are evaluated against, from the report. */
export function metricSource(r: Omit<LoadTestReport, 'thresholds' | 'passed'>): MetricSource {
  const values = (s: StepReport) => ({ count: s.count, errors: s.errors, rateLimited: s.rateLimited, rps: s.rps, latencyMs: s.latencyMs });
  return {
    overall: values(r.requests),
    steps: Object.fromEntries(Object.entries(r.steps).map(([k, s]) => [k, values(s)])),
    run: { vus_dropped: r.vus.dropped, vus_abandoned: r.vus.abandoned, vus_failed: r.vus.failed, requests_aborted: r.requests.aborted },
  };
}

const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);
const ms = (v: number | undefined) => (v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1));

export function formatSummary(r: LoadTestReport, outPath: string | undefined): string {
  const lines: string[] = [];
  const where = r.target.local ? `local instance, ${r.target.stack?.database ?? '?'} + ${r.target.stack?.redis ?? '?'}` : 'remote';
  lines.push('', `task-api load test: ${r.target.url} (${where})`);
  lines.push(`load: ${r.options.description}; max ${r.options.maxVus} VUs; think ${r.options.thinkMs} ms; ${r.options.tasksPerUser} tasks per VU`);
  lines.push(`run: ${r.ending} after ${r.elapsedSeconds.toFixed(1)} s`);
  const v = r.vus;
  lines.push(
    `VUs: ${v.arrivals} arrived, ${v.started} started, ${v.completed} completed, ${v.dropped} dropped, ${v.abandoned} abandoned, ` +
      `${v.failed} saw failures, ${v.crashed} crashed; at most ${v.maxConcurrent} at once; ${r.registrations} registrations`,
  );
  lines.push('');
  const head = [pad('step', 11), lpad('reqs', 7), lpad('errors', 7), lpad('429', 5), lpad('err%', 7), lpad('req/s', 7)];
  const latencyHead = ['p50', 'p90', 'p95', 'p99', 'max'].map((h) => lpad(h, 8));
  lines.push([...head, ...latencyHead].join(' ') + '  (ms)');
  const row = (name: string, s: StepReport) =>
    [
      pad(name, 11),
      lpad(String(s.count), 7),
      lpad(String(s.errors), 7),
      lpad(String(s.rateLimited), 5),
      lpad(s.errorRate === null ? '-' : `${(s.errorRate * 100).toFixed(2)}%`, 7),
      lpad(s.rps.toFixed(1), 7),
      ...(['p50', 'p90', 'p95', 'p99', 'max'] as const).map((k) => lpad(ms(s.latencyMs?.[k]), 8)),
    ].join(' ');
  for (const [name, s] of Object.entries(r.steps)) lines.push(row(name, s));
  lines.push(row('all', r.requests));
  if (r.requests.aborted > 0) lines.push(`${r.requests.aborted} requests aborted by the hard limit or Ctrl-C (not counted above)`);
  const samples = Object.entries(r.steps).flatMap(([name, s]) => s.errorSamples.map((e) => `  ${name}: ${e}`));
  if (samples.length > 0) lines.push('', 'failures seen:', ...samples.slice(0, 12));
  if (r.crashSamples.length > 0) lines.push('', 'scenario errors:', ...r.crashSamples.map((c) => `  ${c}`));
  lines.push('', 'thresholds:');
  for (const t of r.thresholds) {
    const unit = /(^|:)(min|avg|p50|p90|p95|p99|max)[<>=]/.test(t.expression) ? ' ms' : '';
    const actual =
      t.actual === null ? 'no data' : `${Number.isInteger(t.actual) ? String(t.actual) : t.actual.toFixed(4).replace(/\.?0+$/, '')}${unit}`;
    lines.push(`  ${t.ok ? '✓' : '✗'} ${pad(t.expression, 28)} ${actual}${t.source === 'default' ? '  (default)' : ''}`);
  }
  lines.push('', r.passed ? 'PASSED: every threshold held' : `FAILED: ${r.thresholds.filter((t) => !t.ok).length} threshold(s) crossed`);
  if (outPath) lines.push(`results: ${outPath}`);
  return lines.join('\n');
}
