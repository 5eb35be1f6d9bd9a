// The ceilings every API row is compared with, measured in the same run: node:http in a child
// process (loaded like the API), the DB ceiling of each endpoint's captured SQL in a child
// process, and pgbench running the list SQL as a reference.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DbCeilingResult, DbCeilingSpec } from './db-ceiling-worker.js';
import { runLoad, type LoadResult } from './load.js';
import { ROOT, runToEnd, spawnTracked } from './procs.js';
import { inline, type Statement } from './sql-capture.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'task-api-bench-spec-'));
process.once('exit', () => rmSync(tmp, { recursive: true, force: true }));

export async function httpCeiling(durationS: number, connections: number): Promise<LoadResult> {
  const child = spawnTracked(process.execPath, [path.join(ROOT, 'build/bench/http-ceiling-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('http ceiling server did not start within 10 s')), 10_000);
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^(\d+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`http ceiling server exited with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    // Warm-up, not measured.
    await runLoad({ url, durationS: 1, connections, next: () => ({ method: 'GET', path: '/health/live' }) });
    return await runLoad({ url, durationS, connections, pid: child.pid, next: () => ({ method: 'GET', path: '/health/live' }) });
  } finally {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }
}

let specs = 0;
/** Writes the spec once; returns its file for every later run of the same ceiling. */
export function writeSpec(spec: DbCeilingSpec): string {
  const file = path.join(tmp, `spec-${specs++}.json`);
  writeFileSync(file, JSON.stringify(spec));
  return file;
}

export async function dbCeiling(specFile: string, durationMs: number): Promise<DbCeilingResult> {
  const r = await runToEnd(process.execPath, [path.join(ROOT, 'build/bench/db-ceiling-worker.js'), specFile], { PATH: process.env.PATH ?? '' }, durationMs + 120_000);
  if (r.code !== 0) throw new Error(`db ceiling worker failed (${r.code}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as DbCeilingResult;
}

export const PGBENCH = ['/usr/bin/pgbench', '/usr/lib/postgresql/15/bin/pgbench'].find((p) => existsSync(p));

export interface PgbenchResult {
  tps: number;
  latencyAvgMs: number;
}

/** pgbench with the statement's own text (parameters inlined), `clients` connections. */
export async function pgbench(databaseUrl: string, st: Statement, clients: number, durationS: number): Promise<PgbenchResult> {
  if (!PGBENCH) throw new Error('pgbench not found');
  const file = path.join(tmp, `pgbench-${specs++}.sql`);
  writeFileSync(file, `${inline(st).replace(/\s+/g, ' ')};\n`);
  const args = ['-n', '-M', 'prepared', '-c', String(clients), '-j', '2', '-T', String(Math.max(1, Math.round(durationS))), '-f', file, databaseUrl];
  const r = await runToEnd(PGBENCH, args, { PATH: process.env.PATH ?? '' }, durationS * 1000 + 60_000);
  if (r.code !== 0) throw new Error(`pgbench failed (${r.code}):\n${r.stderr}${r.stdout}`);
  const tps = /tps = ([\d.]+)/.exec(r.stdout)?.[1];
  const lat = /latency average = ([\d.]+) ms/.exec(r.stdout)?.[1];
  if (!tps) throw new Error(`pgbench printed no tps:\n${r.stdout}`);
  return { tps: Number(tps), latencyAvgMs: Number(lat) };
}
