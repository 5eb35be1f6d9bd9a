// Builds the real application for a test file: its own database cloned from the template, its
// own Redis key prefix, its own signing key. Requests go through app.inject.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/infra/db/database.js';
import { MemoryTokenStore } from '../../src/infra/token-store/memory.js';
import { RedisTokenStore } from '../../src/infra/token-store/redis.js';
import type { RefreshTokenStore } from '../../src/infra/token-store/types.js';
import { loadKeyRing, type KeyRing } from '../../src/modules/auth/keys.js';
import { REDIS_URL } from '../setup/services.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  database: Database;
  testDb: TestDatabase | undefined;
  redis: Redis | undefined;
  keys: KeyRing;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Run on PGlite in memory and in-process token storage instead of PostgreSQL and Redis. */
  embedded?: boolean;
  env?: Record<string, string>;
  /** Share another TestApp's database, Redis prefix and keys (a second instance). */
  sharing?: TestApp;
}

export const testPrivateKey = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

export async function createTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const shared = opts.sharing;
  const testDb = shared ? shared.testDb : opts.embedded ? undefined : await createTestDatabase();
  const prefix = shared?.config.redis.keyPrefix ?? `test:${randomBytes(6).toString('hex')}:`;
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    JWT_PRIVATE_KEY: shared?.config.jwt.privateKeyPem ?? testPrivateKey(),
    REDIS_KEY_PREFIX: prefix,
    ...(testDb ? { DATABASE_URL: testDb.url, REDIS_URL } : {}),
    ...opts.env,
  });
  const database = shared?.database ?? (await openDatabase({ ...config.database, dataDir: ':memory:' }));
  if (opts.embedded && !shared) {
    const { migrate } = await import('../../src/infra/db/migrate.js');
    await migrate(database, { taskPartitions: config.database.taskPartitions });
  }
  const redis = config.redis.url ? new Redis(config.redis.url, { keyPrefix: prefix, maxRetriesPerRequest: 1 }) : undefined;
  const tokenStore: RefreshTokenStore = redis ? new RedisTokenStore(redis) : new MemoryTokenStore();
  const keys = await loadKeyRing({ ...config.jwt, dataDir: ':unused:' });
  const app = await buildApp({ config, database, tokenStore, keys });
  await app.ready();
  return {
    app,
    config,
    database,
    testDb,
    redis,
    keys,
    async close() {
      await app.close();
      if (redis) {
        if (!shared) await deleteKeys(redis, prefix);
        redis.disconnect();
      }
      if (!shared) {
        await database.close();
        await testDb?.drop();
      }
    },
  };
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    // SCAN returns full names; the client would add the prefix again, so strip it.
    if (keys.length) await redis.del(...keys.map((k) => k.slice(prefix.length)));
  } while (cursor !== '0');
}

export interface SessionBody {
  user: { id: string; email: string; role: string; name: string | null };
  accessToken: string;
  refreshToken: string;
}

let seq = 0;
export const uniqueEmail = (tag = 'user') => `${tag}-${process.pid}-${Date.now()}-${seq++}@example.test`;

/** Registers a fresh user and returns the session body. */
export async function register(app: FastifyInstance, email = uniqueEmail(), password = 'correct horse battery'): Promise<SessionBody> {
  const res = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password } });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return res.json<SessionBody>();
}

/** app.inject with the user's Bearer token. */
export function as(app: FastifyInstance, token: string) {
  return (opts: InjectOptions): Promise<LightMyRequestResponse> =>
    app.inject({ ...opts, headers: { authorization: `Bearer ${token}`, ...opts.headers } });
}

/** Registers a user, promotes them to admin in the database, and logs in again for an admin token. */
export async function registerAdmin(t: TestApp): Promise<SessionBody> {
  const email = uniqueEmail('admin');
  const password = 'admin password 1';
  const s = await register(t.app, email, password);
  const { UsersRepository } = await import('../../src/modules/users/repository.js');
  await new UsersRepository(t.database.db).update(s.user.id, { role: 'admin' });
  const res = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } });
  return res.json<SessionBody>();
}
