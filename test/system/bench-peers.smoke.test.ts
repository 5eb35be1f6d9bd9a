// Smoke run of `node build/bench/run.js --peers --quick`: task-api and the seed's stack
// (bench/peers/seed-stack) each ran every row without errors, and every figure is a number.
// Never asserts on timing. Assumes build/ is current and the peer's dependencies are installed
// (.ci/run: npm ci --prefix bench/peers/seed-stack).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchRunner, expectRowsRan, ROOT, type MixedRowSummary } from '../helpers/bench-run.js';

const SYSTEMS = ['task-api', 'seed-stack'];
const EXPECTED_ROWS = SYSTEMS.flatMap((s) => [`${s}: max (closed, 32 conn)`, `${s}: open 500/s`, `${s}: open 700/s`]);
const FIGURES = [
  'task-api req/s / seed-stack req/s (max)',
  'task-api p99 / seed-stack p99 at 500/s',
  'task-api p99 / p50 at 500/s',
  'task-api max RSS under the mixed load (MB)',
  'seed-stack max RSS under the mixed load (MB)',
  'error rate, both systems, all rows',
];

interface RowSummary extends MixedRowSummary {
  maxRssMb: number;
}

describe('bench --peers --quick', { timeout: 300_000 }, () => {
  const bench = benchRunner('bench-peers-smoke');

  it('runs every row on both systems and writes JSON and HTML results', async () => {
    expect(existsSync(path.join(ROOT, 'bench/peers/seed-stack/node_modules')), 'run: npm ci --prefix bench/peers/seed-stack --no-audit --no-fund').toBe(true);
    const { code, output } = await bench.run(['--peers', '--quick']);
    expect(code, output.slice(-5000)).toBe(0);

    const json = bench.latest<{ rows: RowSummary[]; meta: { mode: string; cpus: number } }>();
    expect(json.meta.mode).toBe('peers');
    const byName = expectRowsRan(json.rows, EXPECTED_ROWS);
    for (const name of EXPECTED_ROWS) {
      const row = byName.get(name)!;
      for (const k of ['rps', 'p50', 'p99', 'maxMs', 'maxRssMb'] as const) expect(Number.isFinite(row[k]), `${name} ${k}`).toBe(true);
    }
    for (const name of FIGURES) expect(Number.isFinite(byName.get(name)?.ratio), name).toBe(true);

    expect(bench.html().text).toContain('<svg');
  });
});
