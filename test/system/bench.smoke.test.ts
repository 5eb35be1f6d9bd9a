// Smoke run of the benchmark suite (`node build/bench/run.js --quick`): it still runs end to end,
// every row measured something without errors, ratios are numbers, the report has its charts.
// Never asserts on timing. Assumes build/ is current (npm test compiles tsconfig.tools.json).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchRunner, expectRowsRan, type BenchRow } from '../helpers/bench-run.js';

const EXPECTED_ROWS = [
  'ceiling: node:http',
  'GET /health/live',
  'list 20, cache HIT',
  'ceiling: DB list 20',
  'list 20, cache MISS',
  'ceiling: DB get one',
  'GET one task (MISS)',
  'ceiling: DB create tx',
  'POST create task',
  'ceiling: DB patch tx',
  'PATCH task',
  'mixed 80/15/5',
];
const RATIO_ROWS = ['GET /health/live', 'list 20, cache HIT', 'list 20, cache MISS', 'GET one task (MISS)', 'POST create task', 'PATCH task'];

describe('bench --quick', { timeout: 300_000 }, () => {
  const bench = benchRunner('bench-smoke');

  it('runs every row and writes JSON and HTML results', async () => {
    const { code, output } = await bench.run(['--quick']);
    expect(code, output.slice(-5000)).toBe(0);

    const json = bench.latest<{ rows: BenchRow[]; meta: { cpus: number; node: string } }>();
    expect(json.meta.cpus).toBeGreaterThan(0);
    expect(json.meta.node).toMatch(/^v\d+/);
    const byName = expectRowsRan(json.rows, EXPECTED_ROWS);
    for (const name of RATIO_ROWS) expect(Number.isFinite(byName.get(name)!.ratio), name).toBe(true);

    const html = bench.html();
    expect(html.text).toContain('<svg');
    expect(existsSync(path.join(bench.out, html.name.replace(/\.html$/, '.json')))).toBe(true);
  });
});
