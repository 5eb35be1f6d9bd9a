// Smoke run of the benchmark suite (`node build/bench/run.js --quick`): it still runs end to end,
// every row measured something without errors, ratios are numbers, the report has its charts.
// Never asserts on timing. Assumes build/ is current (npm test compiles tsconfig.tools.json).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_DATABASE_URL, databaseUrl, REDIS_URL } from '../setup/services.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
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

interface RowSummary {
  name: string;
  requests: number;
  errors: number;
  ratio?: number;
  problems: string[];
}

describe('bench --quick', { timeout: 300_000 }, () => {
  const dbName = `task_api_bench_${randomBytes(5).toString('hex')}`;
  const out = mkdtempSync(path.join(tmpdir(), 'task-api-bench-smoke-'));

  afterAll(async () => {
    rmSync(out, { recursive: true, force: true });
    const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  });

  it('runs every row and writes JSON and HTML results', async () => {
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, ['build/bench/run.js', '--quick', '--out', out], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', BENCH_DATABASE_URL: databaseUrl(dbName), BENCH_REDIS_URL: REDIS_URL },
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      const timer = setTimeout(() => child.kill('SIGINT'), 280_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve({ code: c, output: text });
      });
    });
    expect(code, output.slice(-5000)).toBe(0);

    const json = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as { rows: RowSummary[]; meta: { cpus: number; node: string } };
    expect(json.meta.cpus).toBeGreaterThan(0);
    expect(json.meta.node).toMatch(/^v\d+/);
    const byName = new Map(json.rows.map((r) => [r.name, r]));
    for (const name of EXPECTED_ROWS) {
      const row = byName.get(name);
      expect(row, `row ${name}`).toBeDefined();
      expect(row!.requests, name).toBeGreaterThan(0);
      expect(row!.errors, name).toBe(0);
      expect(row!.problems, name).toEqual([]);
    }
    for (const name of RATIO_ROWS) expect(Number.isFinite(byName.get(name)!.ratio), name).toBe(true);

    const html = readdirSync(out).find((f) => f.endsWith('.html'));
    expect(html).toBeDefined();
    const text = readFileSync(path.join(out, html!), 'utf8');
    expect(text).toContain('<svg');
    expect(existsSync(path.join(out, html!.replace(/\.html$/, '.json')))).toBe(true);
  });
});
