// The chaos run (build/chaos/run.js) as CI runs it: `--short`, its own cluster in a directory of
// this test's, on the full topology (--redis-sentinel --ha --sync --rabbit-cluster --worker
// --netns: its start takes about 30 s on 2 cores, the whole run 3 to 4 minutes), about a minute
// of load with each fault of the table injected once. The
// run must exit 0, print its JSON as the last line of stdout with every loss count at 0, and have
// injected and healed every fault the table has for the cluster it started (read back from that
// cluster's state.json). Latency and error windows are printed, never asserted.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { applicableFaults } from '../../chaos/faults.js';
import { running, stopProcess } from '../../src/operations/cluster/roles.js';
import { readState, stateFile } from '../../src/operations/cluster/state.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The run's own bound is about 4 minutes (start, 75 s of load, settling, stop); this only stops a hung run. */
const RUN_TIMEOUT_MS = 600_000;

interface Summary {
  acknowledgedMissing: number;
  eventsMissing: number;
  phantoms: number;
  duplicates: number;
  hungReads: number;
  ok: boolean;
  faults: { name: string; injectedAt: string; healedAt: string | null; errorWindowSeconds: number; errorsSeen: number; error?: string }[];
  requests: { total: number; ok: number };
  writes: { creates: { acknowledged: number }; updates: { acknowledged: number } };
  crashed: { name: string; lastError: string }[];
  topology: { requested: string; startFlags: string[]; without: string[] };
}

function runChaos(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['build/chaos/run.js', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGINT'), RUN_TIMEOUT_MS);
    proc.once('error', reject);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let dir = '';

afterAll(async () => {
  // The run stops its cluster itself; whatever it recorded and left running goes by its pid.
  if (dir && existsSync(stateFile(dir))) for (const rec of readState(dir).processes) if (running(rec)) await stopProcess(rec, 'kill');
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('npm run chaos -- --short', () => {
  it('injects and heals every applicable fault under load and finds no loss', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'task-api-chaos-smoke-'));
    const res = await runChaos(['--short', '--dir', dir]);
    const lines = res.stdout.trim().split('\n');
    const summary = JSON.parse(lines.at(-1)!) as Summary;
    console.error(`chaos --short: exit ${res.code}; ${lines.at(-1)!.slice(0, 3000)}`);
    expect(res.code, res.stderr.slice(-4000)).toBe(0);
    expect({
      acknowledgedMissing: summary.acknowledgedMissing,
      eventsMissing: summary.eventsMissing,
      phantoms: summary.phantoms,
      duplicates: summary.duplicates,
      hungReads: summary.hungReads,
    }).toEqual({ acknowledgedMissing: 0, eventsMissing: 0, phantoms: 0, duplicates: 0, hungReads: 0 });
    expect(summary.ok).toBe(true);
    // The full topology, with every flag of it this build's cluster start has (all of them).
    expect(summary.topology.without).toEqual([]);
    expect(summary.topology.startFlags).toEqual(expect.arrayContaining(['--redis-sentinel', '--ha', '--sync', '--rabbit-cluster', '--worker', '--netns']));
    // The load did run, and wrote.
    expect(summary.requests.ok).toBeGreaterThan(0);
    expect(summary.writes.creates.acknowledged).toBeGreaterThan(0);
    expect(summary.writes.updates.acknowledged).toBeGreaterThan(0);
    // Every fault the table has for this cluster was injected and healed, once.
    const expected = applicableFaults(readState(dir)).apply.map((f) => f.name);
    expect(expected.length).toBeGreaterThan(0);
    expect(summary.faults.map((f) => f.name).sort()).toEqual([...expected].sort());
    for (const f of summary.faults) {
      expect(f.error, f.name).toBeUndefined();
      expect(f.healedAt, f.name).not.toBeNull();
    }
    // And the cluster was stopped.
    expect(readState(dir).processes.filter(running).map((p) => p.name)).toEqual([]);
  }, RUN_TIMEOUT_MS + 60_000);
});
