import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.join('\n');
  }
  throw new Error('expected a ConfigError');
};

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

  it('does not migrate a configured database at start unless asked', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://x/y' }).database.migrateOnStart).toBe(false);
    expect(loadConfig({ DATABASE_URL: 'postgres://x/y', MIGRATE_ON_START: 'true' }).database.migrateOnStart).toBe(true);
  });
});
