// Smoke run of `node build/bench/run.js --peers --quick`: task-api and the seed's stack
// (bench/peers/seed-stack) each ran every row without errors, and every figure is a number.
// Never asserts on timing. Assumes build/ is current and the peer's dependencies are installed
// (.ci/run: npm ci --prefix bench/peers/seed-stack).
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

interface RowSummary {
  name: string;
  kind: string;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  maxMs?: number;
  maxRssMb: number;
  errors: number;
  ratio?: number;
  problems: string[];
}

describe('bench --peers --quick', { timeout: 300_000 }, () => {
  const dbName = `task_api_bench_${randomBytes(5).toString('hex')}`;
  const out = mkdtempSync(path.join(tmpdir(), 'task-api-bench-peers-smoke-'));

  afterAll(async () => {
    rmSync(out, { recursive: true, force: true });
    const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  });

  it('runs every row on both systems and writes JSON and HTML results', async () => {
    expect(existsSync(path.join(ROOT, 'bench/peers/seed-stack/node_modules')), 'run: npm ci --prefix bench/peers/seed-stack --no-audit --no-fund').toBe(true);
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, ['build/bench/run.js', '--peers', '--quick', '--out', out], {
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

    const json = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as { rows: RowSummary[]; meta: { mode: string; cpus: number } };
    expect(json.meta.mode).toBe('peers');
    const byName = new Map(json.rows.map((r) => [r.name, r]));
    for (const name of EXPECTED_ROWS) {
      const row = byName.get(name);
      expect(row, `row ${name}`).toBeDefined();
      expect(row!.requests, name).toBeGreaterThan(0);
      expect(row!.errors, name).toBe(0);
      expect(row!.problems, name).toEqual([]);
      for (const k of ['rps', 'p50', 'p99', 'maxMs', 'maxRssMb'] as const) expect(Number.isFinite(row![k]), `${name} ${k}`).toBe(true);
    }
    for (const name of FIGURES) expect(Number.isFinite(byName.get(name)?.ratio), name).toBe(true);

    const html = readdirSync(out).find((f) => f.endsWith('.html'));
    expect(html).toBeDefined();
    expect(readFileSync(path.join(out, html!), 'utf8')).toContain('<svg');
  });
});
