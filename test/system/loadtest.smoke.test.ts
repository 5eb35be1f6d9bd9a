// The load-test suite (build/loadtest/run.js) as CI runs it: a smoke run against the built
// server on PostgreSQL and Redis, a run against a port nobody listens on, and bad arguments.
// Latency is never asserted: the thresholds given here are loose on purpose.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_RATE_LIMITS } from '../../loadtest/server.js';
import { freePort, startServer, type ServerProcess } from '../helpers/process.js';
import { serverFixture, servicesEnv } from '../helpers/server-fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface StepJson {
  count: number;
  errors: number;
  networkErrors: number;
}
interface ReportJson {
  registrations: number;
  vus: { started: number; dropped: number; abandoned: number; crashed: number };
  requests: StepJson & { rateLimited: number };
  steps: Record<string, StepJson>;
  thresholds: { expression: string; ok: boolean; actual: number | null }[];
  passed: boolean;
}

function runLoadtest(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['build/loadtest/run.js', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const fixture = serverFixture('task-api-loadtest-test-');

describe('npm run loadtest', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({
      ...servicesEnv(fixture.db),
      LOG_LEVEL: 'warn',
      SHUTDOWN_DRAIN_MS: '0',
      DATA_DIR: fixture.dir,
      // Every VU registers and logs in from 127.0.0.1: the per-IP limits must let a smoke run through.
      ...LOCAL_RATE_LIMITS,
    });
  });
  afterAll(async () => {
    await server?.kill('SIGKILL');
  });

  it('--smoke against a live server: exit 0, every step exercised without errors', async () => {
    const out = path.join(fixture.dir, 'smoke.json');
    // Every VU refreshes its token, so that step is exercised too. Latency limits far from any
    // real value, and a long grace and timeout: a busy CI machine must not abandon VUs.
    const res = await runLoadtest([
      '--smoke', '--url', server.url, '--out', out, '--refresh-ratio', '1', '--grace', '150', '--timeout-ms', '60000',
      '--threshold', 'p95<60s', '--threshold', 'p99<60s', '--quiet',
    ]);
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    const report = JSON.parse(await readFile(out, 'utf8')) as ReportJson;
    expect(report.passed).toBe(true);
    expect(report.vus.started).toBeGreaterThan(0);
    expect(report.vus.crashed).toBe(0);
    expect(report.vus.abandoned).toBe(0);
    expect(report.registrations).toBe(report.vus.started);
    expect(Object.keys(report.steps)).toEqual(['register', 'login', 'list', 'create', 'filter', 'open', 'complete', 'delete', 'refresh', 'list_again']);
    for (const [name, step] of Object.entries(report.steps)) {
      expect(step.count, name).toBeGreaterThan(0);
      expect(step.errors, name).toBe(0);
    }
    expect(report.requests.errors).toBe(0);
    expect(report.requests.count).toBe(Object.values(report.steps).reduce((s, x) => s + x.count, 0));
    expect(report.thresholds.map((t) => t.expression)).toEqual(['http_req_failed<0.01', 'p95<60s', 'p99<60s']);
    expect(res.stdout).toContain('✓ http_req_failed<0.01');
    expect(res.stdout).toContain('PASSED');
  }, 240_000);
});

it('a target nobody listens on: every request fails and the error-rate threshold is crossed (exit 1)', async () => {
  const port = await freePort();
  const out = path.join(fixture.dir, 'closed.json');
  const res = await runLoadtest(['--smoke', '--url', `http://127.0.0.1:${port}`, '--out', out]);
  expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(1);
  const report = JSON.parse(await readFile(out, 'utf8')) as ReportJson;
  expect(report.passed).toBe(false);
  expect(report.registrations).toBe(0);
  expect(report.requests.count).toBeGreaterThan(0);
  expect(report.requests.networkErrors).toBe(report.requests.count);
  const failed = report.thresholds.find((t) => t.expression === 'http_req_failed<0.01');
  expect(failed).toMatchObject({ ok: false, actual: 1 });
  expect(res.stdout).toContain('✗ http_req_failed<0.01');
  expect(res.stdout).toContain('FAILED');
}, 120_000);

it.each([
  [['--rate', 'fast'], '--rate'],
  [['--duration', '-5'], '--duration'],
  [['--max-vus', '0'], '--max-vus'],
  [['--threshold', 'p95<<500'], '--threshold'],
  [['--threshold', 'step:nosuchstep:p95<500'], '--threshold'],
  [['--url', 'not a url'], '--url'],
  [['--cluster', '/nonexistent/cluster-dir'], '--cluster'],
  [['--think-ms'], '--think-ms'],
  [['--frobnicate'], '--frobnicate'],
])('bad arguments %j: exit 2 naming %s', async (args, flag) => {
  const res = await runLoadtest(args);
  expect(res.code).toBe(2);
  expect(res.stderr).toContain(flag);
  expect(res.stdout).toBe('');
});

it('--help documents the flags and the threshold metrics (exit 0)', async () => {
  const res = await runLoadtest(['--help']);
  expect(res.code).toBe(0);
  for (const word of ['--url', '--rate', '--ramp-from', '--max-vus', '--threshold', '--smoke', 'http_req_failed', 'step:<name>:']) {
    expect(res.stdout).toContain(word);
  }
});
