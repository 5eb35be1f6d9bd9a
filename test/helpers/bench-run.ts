// Runs the built benchmark (`node build/bench/run.js ...`) as the smoke tests do: on a database
// and an output directory of its own, both removed after the file's tests; a run that does not
// finish in 280 s (or the limit the test gives) is interrupted.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, expect } from 'vitest';
import { ADMIN_DATABASE_URL, databaseUrl, REDIS_URL } from '../setup/services.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface BenchRow {
  name: string;
  requests: number;
  errors: number;
  ratio?: number;
  problems: string[];
}

/** A row of the mixed-workload modes (--peers, --topology): bench/mixed.ts. */
export interface MixedRowSummary extends BenchRow {
  kind: string;
  rps: number;
  p50: number;
  p99: number;
  maxMs?: number;
}

export function benchRunner(tag: string) {
  const dbName = `task_api_bench_${randomBytes(5).toString('hex')}`;
  const out = mkdtempSync(path.join(tmpdir(), `task-api-${tag}-`));
  afterAll(async () => {
    rmSync(out, { recursive: true, force: true });
    const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  });
  return {
    out,
    /** Runs the bench with `args` (and --out), SIGINT after limitMs; resolves with its exit code and output. */
    run: (args: string[], limitMs = 280_000) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(process.execPath, ['build/bench/run.js', ...args, '--out', out], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? '', BENCH_DATABASE_URL: databaseUrl(dbName), BENCH_REDIS_URL: REDIS_URL },
        });
        let text = '';
        child.stdout.on('data', (d: Buffer) => (text += d.toString()));
        child.stderr.on('data', (d: Buffer) => (text += d.toString()));
        const timer = setTimeout(() => child.kill('SIGINT'), limitMs);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve({ code: c, output: text });
        });
      }),
    /** The run's latest.json. */
    latest: <T>() => JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as T,
    /** The HTML report's file name and text (the test fails when there is none). */
    html: () => {
      const name = readdirSync(out).find((f) => f.endsWith('.html'));
      expect(name).toBeDefined();
      return { name: name!, text: readFileSync(path.join(out, name!), 'utf8') };
    },
  };
}

/** Every named row is there, measured something, and had no errors or problems; returns the rows by name. */
export function expectRowsRan<R extends BenchRow>(rows: R[], names: string[]): Map<string, R> {
  const byName = new Map(rows.map((r) => [r.name, r]));
  for (const name of names) {
    const row = byName.get(name);
    expect(row, `row ${name}`).toBeDefined();
    expect(row!.requests, name).toBeGreaterThan(0);
    expect(row!.errors, name).toBe(0);
    expect(row!.problems, name).toEqual([]);
  }
  return byName;
}

/**
 * The mixed rows of a topology comparison (`--topology`, `--shards-only`): each ran without
 * errors and has its latency figures; each figure is a number, measured once (a quick run is one
 * repetition). Returns the rows by name.
 */
export function expectComparisonRan<R extends MixedRowSummary & { ratios: number[] }>(rows: R[], names: string[], figures: string[]): Map<string, R> {
  const byName = expectRowsRan(rows, names);
  for (const name of names) {
    const row = byName.get(name)!;
    for (const k of ['rps', 'p50', 'p99', 'maxMs'] as const) expect(Number.isFinite(row[k]), `${name} ${k}`).toBe(true);
  }
  for (const name of figures) {
    expect(Number.isFinite(byName.get(name)?.ratio), name).toBe(true);
    expect(byName.get(name)!.ratios, name).toHaveLength(1);
  }
  return byName;
}

