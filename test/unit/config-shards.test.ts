// TASK_SHARDS and each shard's SHARD_<NAME>_URL / SHARD_<NAME>_READ_URLS, SHARD_MAP_REFRESH_MS
// and SHARD_SCATTER_TIMEOUT_MS (src/config.ts): what a sharded deployment is configured with, and
// what it is refused for, naming the variable to fix.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadConfigWithDatabases, shardVariable } from '../../src/config.js';
import { problemsOf as configProblems } from './support/config-problems.js';

const problemsOf = (env: Record<string, string>) => configProblems(loadConfig, env);

const url = (port: number, db = 'task_api') => `postgres://postgres@127.0.0.1:${port}/${db}`;

const sharded: Record<string, string> = {
  DATABASE_URL: url(5000),
  TASK_SHARDS: 's2,s3',
  SHARD_S2_URL: url(5100),
  SHARD_S2_READ_URLS: `${url(5101)},${url(5102)}`,
  SHARD_S3_URL: url(5200),
};

const without = (env: Record<string, string>, ...names: string[]) => Object.fromEntries(Object.entries(env).filter(([k]) => !names.includes(k)));

describe('config: shards of the tasks data', () => {
  it('is not sharded without TASK_SHARDS, with the default map refresh and scatter limit', () => {
    for (const env of [{}, { DATABASE_URL: url(5000) }]) {
      const { shards } = loadConfig(env);
      expect(shards.extra).toEqual([]);
      expect(shards.mapRefreshMs).toBe(500);
      expect(shards.scatterTimeoutMs).toBe(5000);
    }
  });

  it('gives each shard of TASK_SHARDS its URL and replicas, in order', () => {
    const { shards } = loadConfig(sharded);
    expect(shards.extra.map((s) => s.name)).toEqual(['s2', 's3']);
    expect(shards.extra[0]!.primary.url).toBe(url(5100));
    expect(shards.extra[0]!.replicas.map((r) => r.url)).toEqual([url(5101), url(5102)]);
    expect(shards.extra[1]!.primary.url).toBe(url(5200));
    expect(shards.extra[1]!.replicas).toEqual([]);
    expect(shards.mapRefreshMs).toBe(500);
    expect(shards.scatterTimeoutMs).toBe(5000);
  });

  it("sizes a shard's pools like the main one's unless its URL says otherwise, and strips the pool parameters", () => {
    const { shards } = loadConfig({ ...sharded, DATABASE_POOL_MAX: '7', SHARD_S3_URL: `${url(5200)}?connection_limit=3&pool_timeout=2` });
    expect(shards.extra[0]!.primary.poolMax).toBe(7);
    expect(shards.extra[0]!.replicas.map((r) => r.poolMax)).toEqual([7, 7]);
    expect(shards.extra[1]!.primary).toMatchObject({ url: url(5200), poolMax: 3, poolTimeoutMs: 2000 });
  });

  it('trims the names of TASK_SHARDS and takes names with digits and dashes', () => {
    const { shards } = loadConfig({ DATABASE_URL: url(5000), TASK_SHARDS: ' eu-west , s2 ', SHARD_EU_WEST_URL: url(5300), SHARD_S2_URL: url(5100) });
    expect(shards.extra.map((s) => [s.name, s.primary.url])).toEqual([
      ['eu-west', url(5300)],
      ['s2', url(5100)],
    ]);
  });

  it('reads SHARD_MAP_REFRESH_MS and SHARD_SCATTER_TIMEOUT_MS, within their ranges', () => {
    const { shards } = loadConfig({ ...sharded, SHARD_MAP_REFRESH_MS: '100', SHARD_SCATTER_TIMEOUT_MS: '250' });
    expect(shards.mapRefreshMs).toBe(100);
    expect(shards.scatterTimeoutMs).toBe(250);
    expect(problemsOf({ ...sharded, SHARD_MAP_REFRESH_MS: '5' })).toMatch(/^SHARD_MAP_REFRESH_MS:/m);
    expect(problemsOf({ ...sharded, SHARD_SCATTER_TIMEOUT_MS: 'soon' })).toMatch(/^SHARD_SCATTER_TIMEOUT_MS:/m);
  });

  it('refuses TASK_SHARDS without DATABASE_URL (the embedded database is not sharded)', () => {
    const problems = problemsOf(without(sharded, 'DATABASE_URL'));
    expect(problems).toMatch(/^TASK_SHARDS: needs DATABASE_URL/m);
  });

  it("refuses a shard without its SHARD_<NAME>_URL, or with one that is not postgres://", () => {
    expect(problemsOf(without(sharded, 'SHARD_S3_URL'))).toMatch(/^SHARD_S3_URL: required for shard "s3"/m);
    expect(problemsOf(without(sharded, 'SHARD_S3_URL'))).not.toMatch(/SHARD_S2_URL/);
    expect(problemsOf({ ...sharded, SHARD_S3_URL: '' })).toMatch(/^SHARD_S3_URL:/m);
    expect(problemsOf({ ...sharded, SHARD_S3_URL: 'mysql://127.0.0.1/task_api' })).toMatch(/^SHARD_S3_URL:/m);
    expect(problemsOf({ ...sharded, SHARD_S3_URL: `${url(5200)}?connection_limit=0` })).toMatch(/^SHARD_S3_URL connection_limit:/m);
  });

  it('refuses a shard named main (always the database of DATABASE_URL)', () => {
    expect(problemsOf({ ...sharded, TASK_SHARDS: 's2,main', SHARD_MAIN_URL: url(5300) })).toMatch(/^TASK_SHARDS: "main"/m);
  });

  it('refuses a name given twice', () => {
    expect(problemsOf({ ...sharded, TASK_SHARDS: 's2,s3,s2' })).toMatch(/^TASK_SHARDS: "s2" is named twice/m);
  });

  it.each([['S2'], ['2s'], ['s_2'], ['s2,,s3'], ['-s2']])('refuses the shard name list %j', (names) => {
    expect(problemsOf({ ...sharded, TASK_SHARDS: names })).toMatch(/^TASK_SHARDS:/m);
  });

  it('refuses a SHARD_<NAME>_READ_URLS entry that is not postgres://', () => {
    expect(problemsOf({ ...sharded, SHARD_S2_READ_URLS: 'mysql://127.0.0.1/task_api' })).toMatch(/^SHARD_S2_READ_URLS: entry 1 is not a postgres:\/\/ URL/m);
    expect(problemsOf({ ...sharded, SHARD_S2_READ_URLS: `mysql://127.0.0.1/x,${url(5102)}` })).toMatch(/^SHARD_S2_READ_URLS: entry 1/m);
    expect(problemsOf({ ...sharded, SHARD_S3_READ_URLS: `${url(5201)}?pool_timeout=x` })).toMatch(/^SHARD_S3_READ_URLS\[1\] pool_timeout:/m);
  });

  it('throws one ConfigError naming every bad variable', () => {
    let thrown: unknown;
    try {
      loadConfig({ ...without(sharded, 'SHARD_S3_URL'), SHARD_S2_READ_URLS: 'redis://127.0.0.1' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const { problems, message } = thrown as ConfigError;
    expect(problems.some((p) => p.startsWith('SHARD_S3_URL:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('SHARD_S2_READ_URLS:'))).toBe(true);
    expect(message).toContain('SHARD_S3_URL');
  });

  it('names the variables SHARD_<NAME>_<WHAT>, the name upper-cased with - as _', () => {
    expect(shardVariable('shard-2', 'URL')).toBe('SHARD_SHARD_2_URL');
    expect(shardVariable('s2', 'READ_URLS')).toBe('SHARD_S2_READ_URLS');
    expect(shardVariable('eu-west-1', 'READ_URLS')).toBe('SHARD_EU_WEST_1_READ_URLS');
  });
});

describe('loadConfigWithDatabases (an operational command given a cluster --dir)', () => {
  it("keeps none of the caller's own database and shard settings, and takes the given ones", () => {
    const url = (port: number) => `postgres://u@127.0.0.1:${port}/db`;
    const own = {
      DATABASE_URL: url(1),
      DATABASE_READ_URLS: url(2),
      DATABASE_POOL_MAX: '9',
      TASK_SHARDS: 's9',
      SHARD_S9_URL: url(3),
      LOG_LEVEL: 'warn',
    };
    const config = loadConfigWithDatabases({ DATABASE_URL: url(5000), TASK_SHARDS: 's2', SHARD_S2_URL: url(5100) }, own);
    expect(config.database.url).toBe(url(5000));
    expect(config.database.replicas).toEqual([]);
    expect(config.database.poolMax).toBe(10);
    expect(config.shards.extra.map((s) => [s.name, s.primary.url])).toEqual([['s2', url(5100)]]);
    expect(config.logLevel).toBe('warn');
  });
});
