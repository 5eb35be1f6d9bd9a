// DATABASE_URL's pool parameters in Prisma's spelling (the seed's), and DATABASE_READ_URLS.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { parseDatabaseUrl, splitUrls } from '../../src/shared/database-url.js';
import { problemsOf as configProblems } from './support/config-problems.js';

const problemsOf = (env: Record<string, string>) => configProblems(loadConfig, env);

describe('parseDatabaseUrl', () => {
  it("reads the seed's parameters and strips them, keeping the rest of the URL verbatim", () => {
    const problems: string[] = [];
    const out = parseDatabaseUrl(
      'postgresql://user:p%40ss@db:5432/taskdb?schema=public&connection_limit=100&pool_timeout=10&connect_timeout=10',
      'DATABASE_URL',
      problems,
    );
    expect(problems).toEqual([]);
    expect(out).toEqual({ url: 'postgresql://user:p%40ss@db:5432/taskdb', connectionLimit: 100, poolTimeoutSeconds: 10, connectTimeoutSeconds: 10 });
  });

  it('keeps parameters it does not own (sslmode, application_name) and the fragment', () => {
    const problems: string[] = [];
    const out = parseDatabaseUrl('postgres://u@h1:5432,h2:5433/db?sslmode=require&connection_limit=5&application_name=x#f', 'X', problems);
    expect(problems).toEqual([]);
    expect(out.url).toBe('postgres://u@h1:5432,h2:5433/db?sslmode=require&application_name=x#f');
    expect(out.connectionLimit).toBe(5);
  });

  it('leaves a URL without parameters alone', () => {
    const problems: string[] = [];
    expect(parseDatabaseUrl('postgres://u@h/db', 'X', problems)).toEqual({ url: 'postgres://u@h/db' });
    expect(problems).toEqual([]);
  });

  it('pgbouncer=true asks for unnamed statements; 0 timeouts mean no limit', () => {
    const problems: string[] = [];
    expect(parseDatabaseUrl('postgres://u@h/db?pgbouncer=true&pool_timeout=0&connect_timeout=0', 'X', problems)).toEqual({
      url: 'postgres://u@h/db',
      pgbouncer: true,
      poolTimeoutSeconds: 0,
      connectTimeoutSeconds: 0,
    });
    expect(problems).toEqual([]);
  });

  it.each([
    ['connection_limit=0', 'X connection_limit: must be an integer between 1 and 1000 (got 0)'],
    ['connection_limit=ten', 'X connection_limit: must be an integer between 1 and 1000 (got ten)'],
    ['pool_timeout=-1', 'X pool_timeout: must be an integer between 0 and 3600 (got -1)'],
    ['connect_timeout=1.5', 'X connect_timeout: must be an integer between 0 and 3600 (got 1.5)'],
    ['pgbouncer=yes', 'X pgbouncer: must be true or false (got yes)'],
    ['schema=tenant', 'X schema: only public is supported'],
    ['socket_timeout=5', 'X socket_timeout: a Prisma parameter this driver does not support'],
    ['connection_limit=1&connection_limit=2', 'X connection_limit: given 2 times'],
  ])('refuses %s', (query, problem) => {
    const problems: string[] = [];
    parseDatabaseUrl(`postgres://u@h/db?${query}`, 'X', problems);
    expect(problems.join('\n')).toContain(problem);
  });
});

describe('splitUrls', () => {
  it('splits where a URL begins, so a multi-host URL stays whole', () => {
    expect(splitUrls('postgres://a@h1:1,h2:2/db, postgresql://b@h3/db ,')).toEqual(['postgres://a@h1:1,h2:2/db', 'postgresql://b@h3/db']);
  });
});

describe('config: database', () => {
  it('maps the URL parameters onto the pool, without sending them to the server', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://u@db/tasks?connection_limit=40&pool_timeout=10&connect_timeout=3' });
    expect(c.database).toMatchObject({ url: 'postgres://u@db/tasks', poolMax: 40, poolTimeoutMs: 10_000, connectTimeoutSeconds: 3, replicas: [] });
  });

  it('defaults: DATABASE_POOL_MAX or 10 connections, connect within 10 s, no pool timeout', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db/tasks' }).database).toMatchObject({ poolMax: 10, connectTimeoutSeconds: 10, poolTimeoutMs: 0 });
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db/tasks', DATABASE_POOL_MAX: '7' }).database.poolMax).toBe(7);
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db/tasks?connection_limit=7', DATABASE_POOL_MAX: '7' }).database.poolMax).toBe(7);
  });

  it('refuses DATABASE_POOL_MAX and connection_limit that disagree', () => {
    expect(problemsOf({ DATABASE_URL: 'postgres://u@db/tasks?connection_limit=40', DATABASE_POOL_MAX: '7' })).toContain(
      'DATABASE_POOL_MAX: 7 disagrees with DATABASE_URL connection_limit=40',
    );
  });

  it('pgbouncer=true turns prepared statements off, and contradicts DATABASE_PREPARE=true', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db/tasks?pgbouncer=true' }).database.prepare).toBe(false);
    expect(problemsOf({ DATABASE_URL: 'postgres://u@db/tasks?pgbouncer=true', DATABASE_PREPARE: 'true' })).toContain('DATABASE_PREPARE');
  });

  it('reads DATABASE_READ_URLS, each with its own parameters, the rest from the primary', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://u@primary/tasks?connect_timeout=3',
      DATABASE_POOL_MAX: '12',
      DATABASE_READ_URLS: 'postgres://u@r1:5432/tasks?connection_limit=4,postgres://u@r2:5432/tasks',
      DATABASE_REPLICA_MAX_LAG_MS: '2000',
    });
    expect(c.database.replicas).toEqual([
      { url: 'postgres://u@r1:5432/tasks', poolMax: 4, connectTimeoutSeconds: 10, poolTimeoutMs: 0 },
      { url: 'postgres://u@r2:5432/tasks', poolMax: 12, connectTimeoutSeconds: 10, poolTimeoutMs: 0 },
    ]);
    expect(c.database.replicaMaxLagMs).toBe(2000);
    expect(c.database.replicaPollMs).toBe(200);
  });

  it.each([
    [{ DATABASE_READ_URLS: 'postgres://u@r1/tasks' }, 'DATABASE_READ_URLS: needs DATABASE_URL'],
    [{ DATABASE_URL: 'postgres://u@p/t', DATABASE_READ_URLS: 'mysql://r1/tasks' }, 'DATABASE_READ_URLS'],
    [{ DATABASE_URL: 'postgres://u@p/t', DATABASE_READ_URLS: 'postgres://u@r1/t?connection_limit=0' }, 'DATABASE_READ_URLS[1] connection_limit'],
    [{ DATABASE_URL: 'postgres://u@p/t', DATABASE_REPLICA_MAX_LAG_MS: '5' }, 'DATABASE_REPLICA_MAX_LAG_MS'],
    [{ DATABASE_URL: 'postgres://u@p/t', DATABASE_REPLICA_POLL_MS: 'often' }, 'DATABASE_REPLICA_POLL_MS'],
  ])('refuses %j', (env, problem) => {
    expect(problemsOf(env)).toContain(problem);
  });
});
