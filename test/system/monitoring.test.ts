// deploy/monitoring checked by the real tools: promtool validates the Prometheus configuration
// and the rules and runs the alert unit tests (alerts.test.yml); the Grafana dashboard is valid
// JSON whose queries name only the metrics task-api exports. promtool comes with Debian's
// prometheus package (.ci/run installs it); without it these tests fail, they do not skip.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allPanels, DASHBOARD_METRICS, EVENT_METRICS, loadDashboard, SERVICE_METRICS } from '../helpers/monitoring.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MONITORING = 'deploy/monitoring';

/** Runs promtool from the repository root; resolves whatever the exit code, rejects if absent. */
function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile('promtool', args, { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('promtool is not installed: apt-get install -y prometheus (bash .ci/run does it)'));
        return;
      }
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output });
    });
  });
}

// --- PromQL metric names ---------------------------------------------------------------------

/** Every metric task-api exports, and Prometheus' own `up`. */
const HISTOGRAMS = ['http_request_duration_seconds', 'db_query_duration_seconds'];
const KNOWN_METRICS = new Set([
  ...HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
  ...SERVICE_METRICS,
  ...EVENT_METRICS,
  // the read/write router's, with DATABASE_READ_URLS (src/observability/metrics.ts readRouting)
  'db_replica_up',
  'db_replica_lag_seconds',
  'db_reads_routed_total',
  // the shards', with TASK_SHARDS (src/observability/metrics.ts shardRecorder)
  'shard_map_version',
  'shard_writes_moved_total',
  // prom-client 15 default metrics
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_virtual_memory_bytes',
  'process_heap_bytes',
  'process_open_fds',
  'process_max_fds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_requests',
  'nodejs_active_requests_total',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_heap_space_size_total_bytes',
  'nodejs_heap_space_size_used_bytes',
  'nodejs_heap_space_size_available_bytes',
  'nodejs_version_info',
  'nodejs_gc_duration_seconds_bucket',
  'nodejs_gc_duration_seconds_sum',
  'nodejs_gc_duration_seconds_count',
  // Prometheus
  'up',
]);

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects. Strings, Grafana variables, label matchers,
 * ranges, label lists (by, without, on, ignoring, group_*), durations and numbers are removed;
 * what remains is function names (followed by "("), keywords and metric names.
 */
function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/(?<![\w:])(?:\d+(?:ms|[smhdwy]))+(?![\w:])/g, ' ')
    .replace(/(?<![\w:])(?:0x[0-9a-f]+|\d*\.?\d+(?:e[+-]?\d+)?)(?![\w:])/gi, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = s.slice(m.index + m[0].length).trimStart();
    if (rest.startsWith('(') || PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

describe('metricNames', () => {
  it('finds the selected metrics and nothing else', () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route!~"/health|x", job="$job"}[5m])))')).toEqual([
      'http_request_duration_seconds_bucket',
    ]);
    expect(metricNames('(sum(rate(a_total{x="1"}[$__rate_interval])) or vector(0)) / on(job) group_left(instance) b:rule:ratio offset 1h > 1e3')).toEqual([
      'a_total',
      'b:rule:ratio',
    ]);
    expect(metricNames('process_resident_memory_bytes > 150 * 1024 * 1024 and up == 0')).toEqual(['process_resident_memory_bytes', 'up']);
    expect(metricNames('sum(increase(refresh_token_reuse_total[15m])) by (job) unless absent(up{job="task-api"}[1h:5m])')).toEqual([
      'refresh_token_reuse_total',
      'up',
    ]);
  });
});

// --- promtool ----------------------------------------------------------------------------------

describe('Prometheus configuration and rules (promtool)', () => {
  it('promtool check config accepts prometheus.yml and the rule files it loads', async () => {
    const { code, output } = await promtool('check', 'config', `${MONITORING}/prometheus.yml`);
    expect(output).toContain('SUCCESS');
    expect(code, output).toBe(0);
  });

  it('promtool check rules accepts alerts.yml', async () => {
    const { code, output } = await promtool('check', 'rules', `${MONITORING}/alerts.yml`);
    expect(output).toMatch(/SUCCESS: \d+ rules found/);
    expect(code, output).toBe(0);
  });

  it('promtool test rules: every alert unit test in alerts.test.yml passes', async () => {
    const { code, output } = await promtool('test', 'rules', `${MONITORING}/alerts.test.yml`);
    expect(output).toContain('SUCCESS');
    expect(code, output).toBe(0);
  });

  it('promtool fails on a broken rule file (the checks above can fail)', async () => {
    const { code } = await promtool('check', 'rules', `${MONITORING}/prometheus.yml`);
    expect(code).not.toBe(0);
  });
});

// --- alerts.yml, read as text (no YAML library among the dependencies) ------------------------

interface RuleText {
  kind: 'alert' | 'record';
  name: string;
  /** The rule's lines, up to the next rule. */
  body: string;
  expr: string;
}

function readRules(file: string): RuleText[] {
  const lines = readFileSync(`${ROOT}/${file}`, 'utf8').split('\n');
  const rules: RuleText[] = [];
  for (let i = 0; i < lines.length; i++) {
    const start = /^(\s*)- (alert|record): (\S+)\s*$/.exec(lines[i]!);
    if (!start) continue;
    const indent = start[1]!.length;
    let end = i + 1;
    while (end < lines.length && !(new RegExp(`^\\s{0,${indent}}\\S`).test(lines[end]!) && lines[end]!.trim() !== '')) end++;
    const block = lines.slice(i, end);
    const exprAt = block.findIndex((l) => /^\s*expr:/.test(l));
    let expr = '';
    if (exprAt >= 0) {
      const first = block[exprAt]!.replace(/^\s*expr:\s*/, '');
      if (/^[|>][-+]?$/.test(first)) {
        const keyIndent = /^\s*/.exec(block[exprAt]!)![0].length;
        const more: string[] = [];
        for (const l of block.slice(exprAt + 1)) {
          if (l.trim() !== '' && /^\s*/.exec(l)![0].length <= keyIndent) break;
          more.push(l.trim());
        }
        expr = more.join(' ').trim();
      } else {
        expr = first;
      }
    }
    rules.push({ kind: start[2] as 'alert' | 'record', name: start[3]!, body: block.join('\n'), expr });
  }
  return rules;
}

describe('alerts.yml', () => {
  const rules = readRules(`${MONITORING}/alerts.yml`);
  const alerts = rules.filter((r) => r.kind === 'alert');
  const records = rules.filter((r) => r.kind === 'record');

  it('holds the alerts, each with a severity, a summary and a description', () => {
    expect(alerts.map((a) => a.name)).toEqual(
      expect.arrayContaining(['TaskApiHighErrorRatio', 'TaskApiHighLatencyP99', 'TaskApiInstanceDown', 'TaskApiDbPoolWaiting', 'TaskApiEventLoopLag', 'TaskApiHighMemory']),
    );
    expect(alerts.map((a) => a.name)).toEqual(
      expect.arrayContaining([
        'TaskApiOutboxBacklog',
        'TaskApiEventPublishFailing',
        'TaskApiEventsDeadLettered',
        'TaskApiEventConsumeFailureRatio',
        'TaskApiEventConsumerStalled',
      ]),
    );
    for (const a of alerts) {
      expect(a.body, a.name).toMatch(/^\s+severity: (critical|warning)$/m);
      expect(a.body, a.name).toMatch(/^\s+summary: \S/m);
      expect(a.body, a.name).toMatch(/^\s+description: \S/m);
    }
  });

  it('queries only exported metrics and its own recording rules', () => {
    const known = new Set([...KNOWN_METRICS, ...records.map((r) => r.name)]);
    for (const r of rules) {
      expect(r.expr, r.name).not.toBe('');
      const names = metricNames(r.expr);
      expect(names.length, r.name).toBeGreaterThan(0);
      for (const n of names) expect(known.has(n), `${r.name} uses unknown metric ${n}`).toBe(true);
    }
  });

  it('alerts.test.yml makes every alert fire and also checks it stays quiet', () => {
    const text = readFileSync(`${ROOT}/${MONITORING}/alerts.test.yml`, 'utf8');
    const cases = [...text.matchAll(/alertname: (\w+)\s*\n\s*exp_alerts:( \[\])?/g)].map((m) => ({ name: m[1]!, quiet: m[2] !== undefined }));
    for (const a of alerts) {
      expect(cases.some((c) => c.name === a.name && !c.quiet), `${a.name} never fires in alerts.test.yml`).toBe(true);
      expect(cases.some((c) => c.name === a.name && c.quiet), `${a.name} is never expected quiet in alerts.test.yml`).toBe(true);
    }
  });
});

// --- Grafana dashboard -------------------------------------------------------------------------

describe('Grafana dashboard grafana/task-api.json', () => {
  const dashboard = loadDashboard();
  const panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row');
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr ?? '' })));

  it('is a dashboard of schema 39 with a Prometheus data source variable', () => {
    expect(dashboard.uid).toBe('task-api');
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.schemaVersion).toBe(39);
    const vars = dashboard.templating?.list ?? [];
    expect(vars.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    // The services of a job (the `service` label every series carries), all of them by default.
    expect(vars.find((v) => v.name === 'service')).toMatchObject({ type: 'query', includeAll: true, multi: true, allValue: '.*' });
    for (const v of vars.filter((x) => x.type === 'query')) expect(v.datasource?.uid, v.name).toBe('${datasource}');
  });

  it('has unique panel ids, a layout inside 24 columns, and every query on the data source variable', () => {
    const ids = allPanels(dashboard.panels).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(panels.length).toBeGreaterThanOrEqual(12);
    for (const p of panels) {
      expect(p.gridPos, p.title).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, p.title).toBeLessThanOrEqual(24);
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.expr?.trim(), p.title).toBeTruthy();
        expect(t.datasource?.uid ?? '${datasource}', p.title).toBe('${datasource}');
      }
    }
  });

  it('every query names only metrics from the exported list, filtered by the job variable', () => {
    for (const { panel, expr } of exprs) {
      const names = metricNames(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) expect(KNOWN_METRICS.has(n), `${panel} uses unknown metric ${n}`).toBe(true);
      // Every metric is selected with job="$job", so one Prometheus can hold several services.
      for (const n of names) {
        const selectors = [...expr.matchAll(new RegExp(`(?<![\\w:])${n}(?![\\w:])(\\{[^}]*\\})?`, 'g'))];
        for (const sel of selectors) expect(sel[1] ?? '', `${panel}: ${n} without job="$job"`).toContain('job="$job"');
        // And with the service variable (task-api, or one service of a split job), except `up`,
        // which Prometheus writes and which has no service label.
        if (n !== 'up') for (const sel of selectors) expect(sel[1] ?? '', `${panel}: ${n} without service=~"$service"`).toContain('service=~"$service"');
      }
    }
    for (const v of dashboard.templating?.list ?? []) {
      if (v.type !== 'query') continue;
      const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
      const inner = /^label_values\((.*),\s*\w+\)$/.exec(q)?.[1] ?? q;
      for (const n of metricNames(inner)) expect(KNOWN_METRICS.has(n), `variable ${v.name} uses unknown metric ${n}`).toBe(true);
    }
  });

  it('shows request rate, error ratio, p50/p95/p99 by route, pool, query p99, cache, limits, auth, process and events', () => {
    const used = new Set(exprs.flatMap((e) => metricNames(e.expr)));
    for (const m of DASHBOARD_METRICS) expect(used.has(m), `no panel shows ${m}`).toBe(true);
    const all = exprs.map((e) => e.expr).join('\n');
    for (const q of ['0.5', '0.95', '0.99']) {
      expect(all).toContain(`histogram_quantile(${q}, sum by (le, route) (rate(http_request_duration_seconds_bucket{`);
    }
    expect(all).toContain('histogram_quantile(0.99, sum by (le, operation) (rate(db_query_duration_seconds_bucket{');
    expect(all).toMatch(/status_code=~"5\.\."/);
    // The published rate by type, the consumer counters by consumer.
    expect(all).toContain('sum by (type) (rate(events_published_total{');
    for (const c of ['events_consumed_total', 'events_consume_failures_total', 'events_dead_lettered_total']) {
      expect(all).toContain(`sum by (consumer) (rate(${c}{`);
    }
  });

  it('has an Events row whose panels lie below it, and no two panels overlap', () => {
    const top = dashboard.panels ?? [];
    const row = top.find((p) => p.type === 'row' && p.title === 'Events');
    expect(row, 'no row "Events"').toBeDefined();
    const rowIndex = top.indexOf(row!);
    const next = top.findIndex((p, i) => i > rowIndex && p.type === 'row');
    const inRow = top.slice(rowIndex + 1, next < 0 ? undefined : next);
    expect(inRow.length).toBeGreaterThanOrEqual(4);
    for (const p of inRow) expect(p.gridPos!.y, p.title).toBeGreaterThan(row!.gridPos!.y);
    const boxes = allPanels(top).filter((p) => p.gridPos);
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) {
        const A = a.gridPos!;
        const B = b.gridPos!;
        const overlap = A.x < B.x + B.w && B.x < A.x + A.w && A.y < B.y + B.h && B.y < A.y + A.h;
        expect(overlap, `${a.title} overlaps ${b.title}`).toBe(false);
      }
    }
  });
});
