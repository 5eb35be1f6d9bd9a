// `task-api cluster start --shards N` without starting anything: the shards' URLs
// (src/operations/cluster/shards.ts), the variables the API instances get for them
// (src/operations/cluster/api.ts), what an operational command gets (shardEnvOf), the status's
// list, and PgBouncer's database entries for the extra shards (src/operations/cluster/pgbouncer.ts).
// test/system/cluster-shards.test.ts runs the real servers.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { apiCommand, type Instance, type Topology } from '../../src/operations/cluster/api.js';
import { parseIni, PGBOUNCER_TEMPLATE, renderPgBouncerIni } from '../../src/operations/cluster/pgbouncer.js';
import { extraShardNames, pgbouncerDatabase, shardEnvOf, shardRecords, shardsOf, shardVariables } from '../../src/operations/cluster/shards.js';
import type { ClusterState, ProcessRecord } from '../../src/operations/cluster/state.js';
import { clusterStatus } from '../../src/operations/cluster/status.js';

const url = (port: number, db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;

/** Main on 5000 (replica 5001), s2 on 5100 (5101), s3 on 5200 (5201); PgBouncer on 6432. */
const layout = (database: string, replicas = true) => ({
  database,
  pgbouncerPort: 6432,
  main: { primaryPort: 5000, replicaPorts: replicas ? [5001] : [] },
  extra: [
    { name: 's2', primaryPort: 5100, replicaPorts: replicas ? [5101] : [] },
    { name: 's3', primaryPort: 5200, replicaPorts: replicas ? [5201] : [] },
  ],
});

describe('the shards of a cluster', () => {
  it('names the shards besides main s2 ... sN', () => {
    expect(extraShardNames(1)).toEqual([]);
    expect(extraShardNames(3)).toEqual(['s2', 's3']);
  });

  it('reaches main and every extra shard through PgBouncer (<database>_<shard>), the replicas and the primaries directly', () => {
    expect(shardRecords(layout('task_api'))).toEqual([
      { name: 'main', url: url(6432, 'task_api'), readUrls: [url(5001, 'task_api')], primaryUrl: url(5000, 'task_api') },
      { name: 's2', url: url(6432, 'task_api_s2'), readUrls: [url(5101, 'task_api')], primaryUrl: url(5100, 'task_api') },
      { name: 's3', url: url(6432, 'task_api_s3'), readUrls: [url(5201, 'task_api')], primaryUrl: url(5200, 'task_api') },
    ]);
    // Split: the tasks service's database is main, and its name on every other shard.
    expect(shardRecords(layout('task_api_tasks')).map((s) => [s.url, s.primaryUrl])).toEqual([
      [url(6432, 'task_api_tasks'), url(5000, 'task_api_tasks')],
      [url(6432, 'task_api_tasks_s2'), url(5100, 'task_api_tasks')],
      [url(6432, 'task_api_tasks_s3'), url(5200, 'task_api_tasks')],
    ]);
    expect(pgbouncerDatabase('task_api', 'eu-west')).toBe('task_api_eu_west');
  });

  it('gives TASK_SHARDS and SHARD_<NAME>_URL / _READ_URLS for the extra shards; nothing with main alone', () => {
    const shards = shardRecords(layout('task_api'));
    expect(shardVariables(shards, 'url')).toEqual({
      TASK_SHARDS: 's2,s3',
      SHARD_S2_URL: url(6432, 'task_api_s2'),
      SHARD_S2_READ_URLS: url(5101, 'task_api'),
      SHARD_S3_URL: url(6432, 'task_api_s3'),
      SHARD_S3_READ_URLS: url(5201, 'task_api'),
    });
    expect(shardVariables(shards, 'primaryUrl')).toMatchObject({ SHARD_S2_URL: url(5100, 'task_api'), SHARD_S3_URL: url(5200, 'task_api') });
    expect(shardVariables(shards.slice(0, 1), 'url')).toEqual({});
    // No replicas: no READ_URLS.
    expect(Object.keys(shardVariables(shardRecords(layout('task_api', false)), 'url')).sort()).toEqual(['SHARD_S2_URL', 'SHARD_S3_URL', 'TASK_SHARDS']);
    // A name with '-' becomes '_' in the variable.
    expect(shardVariables([shards[0]!, { ...shards[1]!, name: 'eu-west' }], 'url')).toHaveProperty('SHARD_EU_WEST_URL');
  });

  it("are what the server's configuration reads (src/config.ts): the same names, URLs and replicas", () => {
    const shards = shardRecords(layout('task_api'));
    const config = loadConfig({ DATABASE_URL: shards[0]!.url, DATABASE_PREPARE: 'false', ...shardVariables(shards, 'url') });
    expect(config.shards.extra.map((s) => [s.name, s.primary.url, s.replicas.map((r) => r.url)])).toEqual([
      ['s2', url(6432, 'task_api_s2'), [url(5101, 'task_api')]],
      ['s3', url(6432, 'task_api_s3'), [url(5201, 'task_api')]],
    ]);
  });
});

describe('the API instances of a sharded cluster', () => {
  const shardEnv = shardVariables(shardRecords(layout('task_api')), 'url');
  const topology: Topology = {
    databaseUrl: url(6432, 'task_api'),
    readUrls: [url(5001, 'task_api')],
    redisUrl: 'redis://127.0.0.1:6379',
    amqpUrl: 'amqp://127.0.0.1:5672',
    trustProxy: '127.0.0.1',
    jwtPrivateKey: 'key',
    shardEnv,
  };
  const instance: Instance = { name: 'api-1', port: 3001, metricsPort: 9465, dataDir: '/tmp/api-1' };

  it('gives every monolith instance and the tasks service the shards, beside DATABASE_URL through PgBouncer', () => {
    for (const i of [instance, { ...instance, name: 'tasks-1', service: 'tasks' }]) {
      const env = apiCommand(i, topology, {}).env;
      expect(env).toMatchObject(shardEnv);
      expect(env).toMatchObject({ DATABASE_URL: url(6432, 'task_api'), DATABASE_PREPARE: 'false', DATABASE_READ_URLS: url(5001, 'task_api') });
    }
  });

  it('gives the other services none of them, and drops a TASK_SHARDS the runner was given', () => {
    for (const service of ['auth', 'users', 'notifications']) {
      const env = apiCommand({ ...instance, service }, topology, { TASK_SHARDS: 'x' }).env;
      expect(Object.keys(env).filter((k) => k === 'TASK_SHARDS' || k.startsWith('SHARD_S')), service).toEqual([]);
    }
    // Main alone: no TASK_SHARDS, whatever the runner had; the map's settings still pass through.
    const env = apiCommand(instance, { ...topology, shardEnv: {} }, { TASK_SHARDS: 'x', SHARD_MAP_REFRESH_MS: '100' }).env;
    expect(env).not.toHaveProperty('TASK_SHARDS');
    expect(env.SHARD_MAP_REFRESH_MS).toBe('100');
    expect(apiCommand(instance, { ...topology, shardEnv: {} }, {}).env).not.toHaveProperty('TASK_SHARDS');
  });
});

describe('a cluster state with shards', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  const rec = (name: string, role: ProcessRecord['role'], port: number, extra: Partial<ProcessRecord> = {}): ProcessRecord => ({
    name,
    role,
    pid: null,
    port,
    urls: { url: url(port, 'task_api') },
    logFile: `/d/${name}.log`,
    start: { kind: 'command', command: 'postgres', args: [], env: {} },
    ...extra,
  });
  const state = (withShards: boolean): ClusterState => ({
    dir: '/d',
    createdAt: '2026-01-01T00:00:00.000Z',
    publicUrl: 'http://127.0.0.1:8080',
    ...(withShards ? { shards: shardRecords(layout('task_api')) } : {}),
    processes: [
      rec('primary', 'postgres-primary', 5000),
      rec('replica-1', 'postgres-replica', 5001),
      rec('pgbouncer', 'pgbouncer', 6432),
      rec('pg-s2', 'postgres-primary', 5100, { shard: 's2' }),
      rec('pg-s2-replica-1', 'postgres-replica', 5101, { shard: 's2' }),
      rec('pg-s3', 'postgres-primary', 5200, { shard: 's3' }),
      rec('pg-s3-replica-1', 'postgres-replica', 5201, { shard: 's3' }),
    ],
  });

  it('shardEnvOf: DATABASE_URL and every SHARD_<NAME>_URL the primary servers themselves, not PgBouncer', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'task-api-shards-'));
    writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ ...state(true), dir }));
    expect(shardEnvOf(dir)).toEqual({
      DATABASE_URL: url(5000, 'task_api'),
      TASK_SHARDS: 's2,s3',
      SHARD_S2_URL: url(5100, 'task_api'),
      SHARD_S2_READ_URLS: url(5101, 'task_api'),
      SHARD_S3_URL: url(5200, 'task_api'),
      SHARD_S3_READ_URLS: url(5201, 'task_api'),
    });
    expect(() => shardEnvOf(path.join(dir, 'none'))).toThrow(/no cluster/);
  });

  it('status lists the shards, main first; primary and replicas stay the main shard\'s', () => {
    const s = clusterStatus(state(true));
    expect(s.shards.map((x) => x.name)).toEqual(['main', 's2', 's3']);
    expect(s.shards[1]).toEqual({ name: 's2', url: url(6432, 'task_api_s2'), readUrls: [url(5101, 'task_api')], primaryUrl: url(5100, 'task_api') });
    expect(s.primary?.name).toBe('primary');
    expect(s.replicas.map((r) => r.name)).toEqual(['replica-1']);
    expect(s.processes.filter((p) => 'shard' in p).map((p) => p.name)).toEqual(['pg-s2', 'pg-s2-replica-1', 'pg-s3', 'pg-s3-replica-1']);
  });

  it('a state without shards (a cluster started before them) has main alone', () => {
    const old = state(false);
    old.processes = old.processes.filter((p) => p.shard === undefined);
    expect(shardsOf(old)).toEqual([{ name: 'main', url: url(6432, 'task_api'), readUrls: [url(5001, 'task_api')], primaryUrl: url(5000, 'task_api') }]);
    expect(shardsOf({ ...old, databases: { tasks: 'task_api_tasks' } })[0]!.primaryUrl).toBe(url(5000, 'task_api_tasks'));
  });
});

describe("PgBouncer's databases for the extra shards", () => {
  it('serves each extra shard under its own name, on its own server, beside the primary\'s databases', () => {
    const servers = [
      { name: 'task_api_s2', port: 5100, dbname: 'task_api' },
      { name: 'task_api_s3', port: 5200, dbname: 'task_api' },
    ];
    const ini = parseIni(
      renderPgBouncerIni(readFileSync(PGBOUNCER_TEMPLATE, 'utf8'), { dir: '/d', port: 6432, primaryPort: 5000, logFile: '/d/l', authFile: '/a', databases: ['task_api'], servers }),
    );
    expect(Object.fromEntries(ini.get('databases')!)).toEqual({
      task_api: 'host=127.0.0.1 port=5000 dbname=task_api',
      task_api_s2: 'host=127.0.0.1 port=5100 dbname=task_api',
      task_api_s3: 'host=127.0.0.1 port=5200 dbname=task_api',
    });
    // Transaction pooling for them too: one [pgbouncer] section for every database.
    expect(ini.get('pgbouncer')!.get('pool_mode')).toBe('transaction');
  });
});
