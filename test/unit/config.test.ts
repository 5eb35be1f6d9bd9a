import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { problemsOf as configProblems } from './support/config-problems.js';

const problemsOf = (env: Record<string, string>) => configProblems(loadConfig, env);

describe('config', () => {
  it('has working defaults for an empty environment (embedded mode)', () => {
    const c = loadConfig({});
    expect(c.http.port).toBe(3000);
    expect(c.database.url).toBeUndefined();
    expect(c.database.migrateOnStart).toBe(true);
    expect(c.database.taskPartitions).toBe(4);
    expect(c.redis.url).toBeUndefined();
    expect(c.jwt.accessTtlSeconds).toBe(900);
    expect(c.jwt.refreshTtlSeconds).toBe(30 * 24 * 3600);
    expect(c.dataDir).toBe('./data');
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_POOL_MAX', '0'],
    ['LOG_LEVEL', 'loud'],
    ['NODE_ENV', 'staging'],
    ['REDIS_URL', 'http://localhost'],
    ['REDIS_PORT', 'abc'],
    ['JWT_ACCESS_TTL_SECONDS', '5'],
    ['JWT_PRIVATE_KEY', 'not a pem'],
    ['MIGRATE_ON_START', 'yes'],
    ['TASK_PARTITIONS', '0'],
    ['HTTP_REQUEST_TIMEOUT_MS', '0'],
    ['HTTP_HEADERS_TIMEOUT_MS', 'soon'],
    ['HTTP_KEEP_ALIVE_TIMEOUT_MS', '99'],
    ['HTTP_CONNECTION_TIMEOUT_MS', '-1'],
    ['CACHE_MAX_BYTES', '1024'],
    ['CACHE_MAX_ENTRY_BYTES', '1mb'],
    ['TASKS_PER_USER_MAX', '0'],
    ['WEBHOOKS_PER_USER_MAX', '100000'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(problemsOf({ [name]: value })).toContain(name);
  });

  it('reports every bad variable at once', () => {
    const msg = problemsOf({ PORT: 'x', LOG_LEVEL: 'y' });
    expect(msg).toContain('PORT');
    expect(msg).toContain('LOG_LEVEL');
  });

  it('needs ADMIN_EMAIL and ADMIN_PASSWORD together', () => {
    expect(problemsOf({ ADMIN_EMAIL: 'a@b.c' })).toContain('ADMIN_PASSWORD');
  });

  it('builds the Redis URL from the seed variables REDIS_HOST/PORT/PASSWORD', () => {
    const c = loadConfig({ REDIS_HOST: 'cache', REDIS_PORT: '6380', REDIS_PASSWORD: 'p@ss' });
    expect(c.redis.url).toBe('redis://:p%40ss@cache:6380');
    expect(loadConfig({ REDIS_URL: 'redis://a:1', REDIS_HOST: 'b' }).redis.url).toBe('redis://a:1');
  });

  it('reaches Redis through Sentinels with REDIS_SENTINELS and REDIS_SENTINEL_MASTER (default task-api)', () => {
    const c = loadConfig({ REDIS_SENTINELS: 's1:26379, s2:26380,10.0.0.3:26381', REDIS_PASSWORD: 'pw' });
    expect(c.redis).toMatchObject({
      url: undefined,
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
        { host: '10.0.0.3', port: 26381 },
      ],
      sentinelMaster: 'task-api',
      password: 'pw',
    });
    expect(loadConfig({ REDIS_SENTINELS: 's:1', REDIS_SENTINEL_MASTER: 'cache' }).redis.sentinelMaster).toBe('cache');
    expect(loadConfig({ REDIS_URL: 'redis://a:1' }).redis.sentinels).toBeUndefined();
  });

  it('refuses REDIS_SENTINELS beside REDIS_URL or REDIS_HOST, a master name without Sentinels, and a bad address', () => {
    for (const other of [{ REDIS_URL: 'redis://a:1' }, { REDIS_HOST: 'a' }] as Record<string, string>[]) {
      const problems = problemsOf({ REDIS_SENTINELS: 's:26379', ...other });
      expect(problems).toContain('REDIS_SENTINELS');
      expect(problems).toContain('REDIS_URL/REDIS_HOST');
    }
    expect(problemsOf({ REDIS_SENTINEL_MASTER: 'm' })).toContain('REDIS_SENTINEL_MASTER: requires REDIS_SENTINELS');
    expect(problemsOf({ REDIS_SENTINELS: 's:99999' })).toContain('REDIS_SENTINELS');
    expect(problemsOf({ REDIS_SENTINELS: 'no-port' })).toContain('REDIS_SENTINELS');
  });

  it('does not migrate a configured database at start unless asked', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://x/y' }).database.migrateOnStart).toBe(false);
    expect(loadConfig({ DATABASE_URL: 'postgres://x/y', MIGRATE_ON_START: 'true' }).database.migrateOnStart).toBe(true);
  });

  it('bounds the server timeouts, the cache and what one user may own by default', () => {
    const c = loadConfig({});
    expect(c.http.timeouts).toEqual({ requestMs: 30000, headersMs: 10000, keepAliveMs: 72000, connectionMs: 60000, answerMs: 8000 });
    expect(c.cache).toMatchObject({ maxBytes: 32 * 1024 * 1024, maxEntryBytes: 256 * 1024 });
    expect(c.limits).toEqual({ tasksPerUser: 10000, webhooksPerUser: 20 });
    const set = loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '2000', HTTP_HEADERS_TIMEOUT_MS: '500', CACHE_MAX_BYTES: '65536', CACHE_MAX_ENTRY_BYTES: '1024' });
    expect(set.http.timeouts).toMatchObject({ requestMs: 2000, headersMs: 500 });
    expect(set.cache).toMatchObject({ maxBytes: 65536, maxEntryBytes: 1024 });
  });

  it('refuses settings that contradict each other, naming them', () => {
    const timeouts = problemsOf({ HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_HEADERS_TIMEOUT_MS: '2000' });
    expect(timeouts).toContain('HTTP_HEADERS_TIMEOUT_MS');
    expect(timeouts).toContain('HTTP_REQUEST_TIMEOUT_MS');
    // against the default request timeout (30 s) too
    expect(problemsOf({ HTTP_HEADERS_TIMEOUT_MS: '40000' })).toContain('HTTP_HEADERS_TIMEOUT_MS');
    const cache = problemsOf({ CACHE_MAX_BYTES: '65536', CACHE_MAX_ENTRY_BYTES: '131072' });
    expect(cache).toContain('CACHE_MAX_ENTRY_BYTES');
    expect(cache).toContain('CACHE_MAX_BYTES');
  });

  it('has a strict per-source and a slow global login policy, both overridable by name', () => {
    const { policies } = loadConfig({}).rateLimit;
    expect(policies['login-account-ip']).toEqual({ points: 5, duration: 60, blockDuration: 900 });
    expect(policies['login-account']).toEqual({ points: 100, duration: 3600, blockDuration: 900 });
    const set = loadConfig({ RATE_LIMIT_POLICIES: '{"login-account-ip":{"points":3,"duration":300,"blockDuration":3600}}' });
    expect(set.rateLimit.policies['login-account-ip']).toEqual({ points: 3, duration: 300, blockDuration: 3600 });
    expect(problemsOf({ RATE_LIMIT_POLICIES: '{"login-source":{"points":3,"duration":300}}' })).toContain('login-account-ip');
  });
});
