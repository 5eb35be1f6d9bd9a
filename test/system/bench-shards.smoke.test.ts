// Smoke run of `node build/bench/run.js --shards-only --quick`: the monolith (2 instances behind
// NGINX) on `cluster start --shards 1` and on `--shards 3`, each started, seeded through the
// public API (50 users x 20 tasks), measured for 2 s a row and stopped: every row ran without
// errors, every figure is a number, the tasks of the 3-shard cluster are on all three shards
// (counted on each primary, and as `task-api shards status` says), the report has its "1 vs 3
// shards" section, and no cluster is left behind. Never asserts on timing. Assumes build/ and
// dist/ are current and the cluster's programs are installed (PostgreSQL, PgBouncer, Redis,
// RabbitMQ, NGINX, Prometheus).
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { benchRunner, expectComparisonRan, type MixedRowSummary } from '../helpers/bench-run.js';

const SYSTEMS = ['1 shard: nginx -> 2 instances', '3 shards: nginx -> 2 instances'];
const EXPECTED_ROWS = SYSTEMS.flatMap((s) => [`${s}: max (closed, 32 conn)`, `${s}: open 500/s`]);
const FIGURES = [
  '3 shards / 1 shard req/s (max)',
  '3 shards / 1 shard p99 at 500/s',
  '1 shard: RSS of its 2 API processes (MB)',
  '3 shards: RSS of its 2 API processes (MB)',
  '1 shard: PSS of its PostgreSQL servers (MB)',
  '3 shards: PSS of its PostgreSQL servers (MB)',
  '3 shards: tasks on main after seeding',
  '3 shards: tasks on s2 after seeding',
  '3 shards: tasks on s3 after seeding',
  '3 shards: skew of the tasks after seeding',
  'error rate, 1 vs 3 shards rows',
];

interface RowSummary extends MixedRowSummary {
  ratios: number[];
}

interface ShardPhase {
  rep: number;
  shards: number;
  instances: number;
  postgresServers: number;
  tasksPerShard: { name: string; tasks: number; buckets?: number; rows?: number }[];
  skew?: number;
}

/** The bench's cluster directories (task-api-bench-topology-*) in the temporary directory. */
const clusterDirs = () => readdirSync(tmpdir()).filter((f) => f.startsWith('task-api-bench-topology-'));

// Two cluster starts (the second with three PostgreSQL servers): about a minute on a quiet
// two-core machine, up to three beside other system tests.
describe('bench --shards-only --quick', { timeout: 320_000 }, () => {
  const bench = benchRunner('bench-shards-smoke');

  it('measures the monolith on 1 and on 3 shards, shows the tasks spread over the three, and stops both clusters', async () => {
    const before = new Set(clusterDirs());
    const { code, output } = await bench.run(['--shards-only', '--quick'], 300_000);
    expect(code, output.slice(-5000)).toBe(0);

    const json = bench.latest<{
      rows: RowSummary[];
      meta: { mode: string; failed: boolean; pgbouncerDroppedPackets: number; shards: { instances: number; shards: number; users: number; tasksPerUser: number; phases: ShardPhase[] } };
    }>();
    expect(json.meta.mode).toBe('shards');
    expect(json.meta.failed).toBe(false);
    expect(json.meta.pgbouncerDroppedPackets).toBe(0);
    const { shards } = json.meta;
    expect([shards.instances, shards.shards, shards.users, shards.tasksPerUser]).toEqual([2, 3, 50, 20]);
    // One repetition: 1 shard first, then 3.
    expect(shards.phases.map((p) => [p.rep, p.shards, p.instances, p.postgresServers])).toEqual([
      [1, 1, 2, 1],
      [1, 3, 2, 3],
    ]);
    const [one, three] = shards.phases;
    expect(one!.tasksPerShard).toEqual([{ name: 'main', tasks: 1000 }]);
    // Every task on exactly one shard, every shard holding some (50 owners over 3 shards), and
    // `shards status` agreeing with the counts; the 1,024 buckets spread over the three.
    expect(three!.tasksPerShard.map((s) => s.name)).toEqual(['main', 's2', 's3']);
    expect(three!.tasksPerShard.reduce((a, s) => a + s.tasks, 0)).toBe(1000);
    for (const s of three!.tasksPerShard) {
      expect(s.tasks, s.name).toBeGreaterThan(0);
      expect(s.rows, s.name).toBe(s.tasks);
      expect(s.buckets, s.name).toBeGreaterThanOrEqual(341);
    }
    expect(three!.tasksPerShard.reduce((a, s) => a + (s.buckets ?? 0), 0)).toBe(1024);
    expect(Number.isFinite(three!.skew)).toBe(true);

    const byName = expectComparisonRan(json.rows, EXPECTED_ROWS, FIGURES);
    expect(byName.get('error rate, 1 vs 3 shards rows')!.ratio).toBe(0);

    // The printed report's section has every row, figure and the tasks per shard; each cluster
    // was stopped and its directory removed.
    expect(output).toContain('1 vs 3 shards\n=============');
    for (const name of [...EXPECTED_ROWS, ...FIGURES]) expect(output).toContain(name);
    expect(output).toMatch(/Tasks per shard after seeding/);
    expect(output).toMatch(/cluster of 2 instance\(s\) on 1 shard stopped/);
    expect(output).toMatch(/cluster of 2 instance\(s\) on 3 shards stopped/);
    expect(clusterDirs().filter((d) => !before.has(d))).toEqual([]);
    const html = bench.html().text;
    expect(html).toContain('<h2>1 vs 3 shards</h2>');
    expect(html).toContain('<svg');
  });
});
