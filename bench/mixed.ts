// The mixed workload of `--peers` and `--topology` (80 % list of 20, page 1; 15 % create; 5 %
// patch; over 50 users), how one of its rows is measured (closed "max" with autocannon, or the
// open model of open-model.ts at a fixed rate) and recorded, and the two tables both modes print.
import type { Redis } from 'ioredis';
import { runLoad, type LoadResult, type Req } from './load.js';
import { runOpen, type OpenResult } from './open-model.js';
import type { TaskRef } from './pools.js';
import { sleep } from './procs.js';
import type { RowSummary, Rows } from './report.js';
import { deleteKeys, type Session } from './setup.js';
import { CREATE_BODY, PATCH_BODY } from './sql-capture.js';

/** Users the mixed workload spreads over. */
export const MIXED_USERS = 50;

/** Deterministic 0..99 for request i (the same dice as the suite's mixed row). */
const dice = (i: number) => (Math.imul(i ^ 0x9e3779b9, 0x85ebca6b) >>> 0) % 100;
const LIST_PATH = '/v1/tasks?limit=20';
const createBody = JSON.stringify(CREATE_BODY);
const patchBody = JSON.stringify(PATCH_BODY);

/** 80 % list of 20 (page 1), 15 % create, 5 % patch; request i is the same on every system measured. */
export function mixedRequest(sessions: Session[], patches: TaskRef[], i: number): Req {
  const d = dice(i);
  const auth = (user: number) => ({ authorization: `Bearer ${sessions[user]!.token}` });
  const user = i % sessions.length;
  if (d < 80) return { method: 'GET', path: LIST_PATH, headers: auth(user) };
  if (d < 95) return { method: 'POST', path: '/v1/tasks', headers: auth(user), body: createBody };
  const t = patches[i % patches.length]!;
  return { method: 'PATCH', path: `/v1/tasks/${t.taskId}`, headers: auth(t.user), body: patchBody };
}

/** The names of a system's mixed rows, and what their notes say. */
export const mixedRows = (sys: string, connections: number) => ({
  max: `${sys}: max (closed, ${connections} conn)`,
  open: (rate: number) => `${sys}: open ${rate}/s`,
});
export const MAX_NOTE = 'closed model: autocannon, as fast as it answers; mixed 80/15/5 over 50 users';
export const openNote = (rate: number) => `open model: ${rate} starts per second, evenly spaced; latency from the scheduled start; req/s is the achieved rate`;

/** Defines a system's max row and its open rows. */
export function defineMixedRows(rows: Rows, sys: string, connections: number, rates: readonly number[]): void {
  const n = mixedRows(sys, connections);
  rows.define(n.max, 'api', { note: MAX_NOTE });
  for (const rate of rates) rows.define(n.open(rate), 'api', { note: openNote(rate) });
}

/** What a row is sent to: the URL, the pid whose VmRSS is sampled, and request i. */
export interface MixedTarget {
  url: string;
  pid?: number;
  next: (i: number) => Req;
}

/** Waits for the last row's connections to settle, then empties the response cache (keys matching `pattern`). */
export async function emptyCache(redis: Redis, pattern: string): Promise<void> {
  await sleep(750);
  await deleteKeys(redis, pattern);
}

/** The closed "max" row: autocannon, `connections` connections, as fast as the target answers; recorded under `name`. */
export async function measureMax(rows: Rows, name: string, t: MixedTarget, durationS: number, connections: number, progress: (msg: string) => void): Promise<LoadResult> {
  const m = await runLoad({ url: t.url, durationS, connections, pid: t.pid, next: t.next });
  rows.add(name, { requests: m.requests, rps: m.rps, p50: m.p50, p99: m.p99, maxMs: m.max, errors: m.errors, maxRssMb: m.maxRssMb, statusCodes: m.statusCodes });
  progress(`${name}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} p99 ${m.p99} max ${m.max} ms, errors ${m.errors}, RSS ${m.maxRssMb.toFixed(0)} MB`);
  return m;
}

/** An open-model row at `rate` starts per second; recorded under `name`. */
export async function measureOpen(rows: Rows, name: string, t: MixedTarget, rate: number, durationS: number, progress: (msg: string) => void): Promise<OpenResult> {
  const r = await runOpen({ url: t.url, rate, durationS, pid: t.pid, next: t.next });
  rows.add(name, {
    requests: r.requests,
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    maxMs: r.max,
    errors: r.errors,
    maxRssMb: r.maxRssMb,
    statusCodes: r.statusCodes,
    generatorLagMaxMs: r.dispatchLagMaxMs,
    ...(r.firstError ? { firstError: r.firstError } : {}),
  });
  progress(
    `${name}: achieved ${r.rps.toFixed(0)}/s of ${rate}, p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} max ${r.max.toFixed(1)} ms, errors ${r.errors}, RSS ${r.maxRssMb.toFixed(0)} MB, generator lag max ${r.dispatchLagMaxMs.toFixed(1)} ms`,
  );
  return r;
}

/** Errors over requests (answered or not) of every measured row. */
export function errorRate(rows: Rows): number {
  const measured = [...rows.rows.values()].filter((r) => r.kind === 'api');
  const total = measured.reduce((a, r) => a + r.runs.reduce((b, x) => b + x.requests + (x.statusCodes?.unanswered ?? 0), 0), 0);
  return measured.reduce((a, r) => a + r.runs.reduce((b, x) => b + x.errors, 0), 0) / Math.max(1, total);
}

const fmt = (x: number | undefined, d: number) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** The measured rows (req/s, p50/p99/max, errors, RSS), then the figures (value, per repetition, bar). */
export function printTables(rows: RowSummary[]): string {
  const measured = rows.filter((r) => r.kind !== 'figure');
  const figures = rows.filter((r) => r.kind === 'figure');
  const grid = (head: string[], body: string[][], left: number[]) => {
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (left.includes(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
  };
  const a = grid(
    ['row', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'max RSS MB'],
    measured.map((r) => [r.name, fmt(r.rps, 0), fmt(r.p50, 2), fmt(r.p99, 2), fmt(r.maxMs, 1), String(r.errors), fmt(r.maxRssMb, 1)]),
    [0],
  );
  const b = grid(
    ['figure', 'value', 'per repetition', 'bar', 'held'],
    figures.map((r) => [r.name, fmt(r.ratio, 3), r.ratios.join(' '), r.bar ? `${r.bar.op} ${r.bar.value}` : '', r.pass === undefined ? '' : r.pass ? 'yes' : 'no']),
    [0, 2],
  );
  return `${a}\n\n${b}`;
}
