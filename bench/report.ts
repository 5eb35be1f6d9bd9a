// Rows, their medians and ratios, the printed table and the JSON results.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { median, round } from './stats.js';

export interface Bar {
  op: '>=' | '<=' | '<' | '==';
  value: number;
  /** What the bar compares, as performance.md says it. */
  label: string;
}

export interface RunFigures {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  maxRssMb?: number;
  /** Slowest answer of the run (ms), where the row measures it (--peers). */
  maxMs?: number;
  /** Open-model rows: the generator's own largest lateness in starting a request (ms). */
  generatorLagMaxMs?: number;
  cache?: { HIT: number; MISS: number; none: number };
  statusCodes?: Record<string, number>;
  firstError?: string;
}

export interface Row {
  name: string;
  kind: 'ceiling' | 'api' | 'reference' | 'figure';
  ceiling?: string;
  bar?: Bar;
  note?: string;
  runs: RunFigures[];
  /** One ratio per repetition (row rps / ceiling rps of the same repetition), or a figure's values. */
  ratios: number[];
}

export interface RowSummary {
  name: string;
  kind: Row['kind'];
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  maxRssMb: number;
  /** Slowest answer over the repetitions (ms), where the runs have it. */
  maxMs?: number;
  ceiling?: string;
  ratio?: number;
  ratios: number[];
  bar?: Bar;
  pass?: boolean;
  note?: string;
  cache?: { HIT: number; MISS: number; none: number };
  problems: string[];
}

export class Rows {
  readonly rows = new Map<string, Row>();

  define(name: string, kind: Row['kind'], extra: Partial<Pick<Row, 'ceiling' | 'bar' | 'note'>> = {}): Row {
    let row = this.rows.get(name);
    if (!row) {
      row = { name, kind, runs: [], ratios: [], ...extra };
      this.rows.set(name, row);
    }
    return row;
  }

  add(name: string, figures: RunFigures): void {
    this.must(name).runs.push(figures);
  }

  ratio(name: string, value: number): void {
    this.must(name).ratios.push(value);
  }

  /** rps of the latest run of a row (the ceiling of the current repetition). */
  latestRps(name: string): number {
    const runs = this.must(name).runs;
    return runs[runs.length - 1]?.rps ?? NaN;
  }

  private must(name: string): Row {
    const row = this.rows.get(name);
    if (!row) throw new Error(`no row ${name}`);
    return row;
  }
}

export function passes(bar: Bar, v: number): boolean {
  if (!Number.isFinite(v)) return false;
  switch (bar.op) {
    case '>=':
      return v >= bar.value;
    case '<=':
      return v <= bar.value;
    case '<':
      return v < bar.value;
    case '==':
      return v === bar.value;
  }
}

export function summarise(row: Row, expectCache?: 'HIT' | 'MISS'): RowSummary {
  const problems: string[] = [];
  const errors = row.runs.reduce((a, r) => a + r.errors, 0);
  if (errors > 0) problems.push(`${errors} errors (status codes: ${JSON.stringify(row.runs.map((r) => r.statusCodes ?? r.firstError))})`);
  const cache = row.runs.some((r) => r.cache)
    ? row.runs.reduce((a, r) => ({ HIT: a.HIT + (r.cache?.HIT ?? 0), MISS: a.MISS + (r.cache?.MISS ?? 0), none: a.none + (r.cache?.none ?? 0) }), { HIT: 0, MISS: 0, none: 0 })
    : undefined;
  if (expectCache && cache) {
    const total = cache.HIT + cache.MISS + cache.none;
    const wrong = total - cache[expectCache];
    if (wrong > 0) problems.push(`expected X-Cache: ${expectCache} on every answer of ${total}, ${wrong} were not (${JSON.stringify(cache)})`);
  }
  const ratio = row.ratios.length > 0 ? median(row.ratios) : undefined;
  const rss = row.runs.map((r) => r.maxRssMb ?? NaN).filter((x) => Number.isFinite(x));
  const s: RowSummary = {
    name: row.name,
    kind: row.kind,
    requests: row.runs.reduce((a, r) => a + r.requests, 0),
    rps: median(row.runs.map((r) => r.rps)),
    p50: median(row.runs.map((r) => r.p50)),
    p99: median(row.runs.map((r) => r.p99)),
    errors,
    maxRssMb: rss.length > 0 ? Math.max(...rss) : NaN,
    ratios: row.ratios.map((r) => round(r, 3)),
    problems,
  };
  const maxMs = row.runs.map((r) => r.maxMs ?? NaN).filter((x) => Number.isFinite(x));
  if (maxMs.length > 0) s.maxMs = Math.max(...maxMs);
  if (row.ceiling) s.ceiling = row.ceiling;
  if (ratio !== undefined) s.ratio = round(ratio, 3);
  if (row.bar) {
    s.bar = row.bar;
    const v = row.kind === 'figure' || ratio !== undefined ? (ratio ?? NaN) : NaN;
    s.pass = passes(row.bar, v);
  }
  if (row.note) s.note = row.note;
  if (cache) s.cache = cache;
  return s;
}

const fmt = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const barText = (b: Bar | undefined) => (b ? `${b.op} ${b.value}` : '');

export function table(rows: RowSummary[]): string {
  const head = ['row', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'max RSS MB', 'ceiling', 'ratio', 'bar', 'result'];
  const body = rows.map((r) => [
    r.name,
    r.kind === 'figure' ? '' : fmt(r.rps, 0),
    r.kind === 'figure' ? '' : fmt(r.p50, 2),
    r.kind === 'figure' ? '' : fmt(r.p99, 2),
    r.kind === 'figure' ? '' : String(r.errors),
    fmt(r.maxRssMb, 1),
    r.ceiling ?? '',
    r.ratio === undefined ? '' : fmt(r.ratio, 3),
    barText(r.bar),
    r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === 6 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function writeJson(outDir: string, stamp: string, data: unknown): string {
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `bench-${stamp}.json`);
  const text = `${JSON.stringify(data, null, 2)}\n`;
  writeFileSync(file, text);
  writeFileSync(path.join(outDir, 'latest.json'), text);
  return file;
}
