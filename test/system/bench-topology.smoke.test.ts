// Smoke run of `node build/bench/run.js --topology --quick`: a 1-instance and a 3-instance
// `task-api cluster` (each started, seeded, measured through NGINX and stopped), and one instance
// beside the first direct to the primary (prepared and not) and through PgBouncer; then the split
// comparison: `cluster start --split` (4 services x 2 behind the gateway) and a 2-instance
// monolith, each seeded through the public API and measured for 2 s a row: every row ran
// without errors, every figure is a number, and no cluster is left behind. The shard comparison,
// which --topology also runs, is left out here (--no-shards): bench-shards.smoke.test.ts runs it
// alone (--shards-only), which keeps each run within its limit. Never asserts on timing. Assumes
// build/ and dist/ are current and the cluster's programs are installed (PostgreSQL, PgBouncer,
// Redis, RabbitMQ, NGINX, Prometheus).
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { benchRunner, expectComparisonRan, type MixedRowSummary } from '../helpers/bench-run.js';

const SPLIT_SYSTEMS = ['monolith: nginx -> 2 instances', 'split: gateway -> 4 services x 2'];
const SYSTEMS = ['nginx -> 1 instance', 'nginx -> 3 instances', 'direct to primary, prepared', 'direct to primary, unprepared', 'PgBouncer, unprepared', ...SPLIT_SYSTEMS];
const EXPECTED_ROWS = SYSTEMS.flatMap((s) => [`${s}: max (closed, 32 conn)`, `${s}: open 500/s`]);
const FIGURES = [
  '3 instances / 1 instance req/s (max, via NGINX)',
  '3 instances / 1 instance p99 at 500/s',
  'PgBouncer / direct req/s (max)',
  'PgBouncer / direct p99 at 500/s',
  'direct unprepared / direct prepared req/s (max)',
  'PgBouncer / direct, both unprepared, req/s (max)',
  'error rate, all rows',
  'split / monolith req/s (max)',
  'split / monolith p99 at 500/s',
  'monolith: RSS of its 2 API processes (MB)',
  'split: RSS of its 8 API processes (MB)',
  'error rate, split vs monolith rows',
];

interface RowSummary extends MixedRowSummary {
  ratios: number[];
}

interface Phase {
  rep: number;
  instances: number;
  replicas: number;
}

interface SplitPhase extends Phase {
  topology: string;
  apiProcesses: number;
}

/** The bench's cluster directories (task-api-bench-topology-*) in the temporary directory. */
const clusterDirs = () => readdirSync(tmpdir()).filter((f) => f.startsWith('task-api-bench-topology-'));

// Six cluster starts (the split one with 8 API processes) on two cores: about three minutes on a
// quiet machine, up to twice that beside other system tests.
describe('bench --topology --quick', { timeout: 620_000 }, () => {
  const bench = benchRunner('bench-topology-smoke');

  it('measures both clusters, the three ways to the primary, split vs monolith, and stops every cluster', async () => {
    const before = new Set(clusterDirs());
    const { code, output } = await bench.run(['--topology', '--quick', '--no-shards'], 600_000);
    expect(code, output.slice(-5000)).toBe(0);

    const json = bench.latest<{
      rows: RowSummary[];
      meta: { mode: string; failed: boolean; phases: Phase[]; pgbouncerDroppedPackets: number; split: { instancesPerRole: number; phases: SplitPhase[] }; shards?: unknown };
    }>();
    expect(json.meta.mode).toBe('topology');
    expect(json.meta.failed).toBe(false);
    expect(json.meta.shards).toBeUndefined();
    // One repetition: the 1-instance cluster, then the 3-instance one.
    expect(json.meta.phases.map((p) => [p.rep, p.instances])).toEqual([
      [1, 1],
      [1, 3],
    ]);
    // Then the split comparison, the monolith first in the first repetition.
    expect(json.meta.split.instancesPerRole).toBe(2);
    expect(json.meta.split.phases.map((p) => [p.rep, p.topology, p.instances, p.apiProcesses])).toEqual([
      [1, 'monolith', 2, 2],
      [1, 'split', 2, 8],
    ]);
    expect(json.meta.pgbouncerDroppedPackets).toBe(0);
    const byName = expectComparisonRan(json.rows, EXPECTED_ROWS, FIGURES);
    expect(byName.get('error rate, all rows')!.ratio).toBe(0);
    expect(byName.get('error rate, split vs monolith rows')!.ratio).toBe(0);

    // The printed table has every row and figure; each cluster was stopped and its directory removed.
    for (const name of [...EXPECTED_ROWS, ...FIGURES]) expect(output).toContain(name);
    expect(output).toMatch(/cluster of 1 instance\(s\) stopped/);
    expect(output).toMatch(/cluster of 3 instance\(s\) stopped/);
    expect(output).toMatch(/cluster of 2 instance\(s\) stopped/);
    expect(output).toMatch(/split cluster of 2 instance\(s\) per service stopped/);
    expect(clusterDirs().filter((d) => !before.has(d))).toEqual([]);
    expect(bench.html().text).toContain('<svg');
  });
});
