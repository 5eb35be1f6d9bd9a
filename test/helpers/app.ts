// Builds the real application for a test file the way `task-api serve` does (openInfrastructure
// + buildApp): its own database cloned from the template, its own Redis key prefix, its own
// signing key. Requests go through app.inject.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse, RouteOptions } from 'fastify';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { and, asc, eq, isNull, like } from 'drizzle-orm';
import { buildApp } from '../../src/app.js';
import { outbox } from '../../src/events/tables.js';
import { createAccountsHandler as createNotificationsAccountsHandler } from '../../src/modules/notifications/handler.js';
import { NotificationsRepository } from '../../src/modules/notifications/repository.js';
import { createAccountsHandler as createTasksAccountsHandler } from '../../src/modules/tasks/accounts.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Database } from '../../src/infra/db/database.js';
import { singleShard, type TaskShards } from '../../src/infra/shards/set.js';
import { ShardRepositories } from '../../src/modules/tasks/service.js';
import type { ResponseCacheStore } from '../../src/infra/cache/types.js';
import type { IdempotencyStore } from '../../src/infra/idempotency/types.js';
import { openInfrastructure } from '../../src/infrastructure.js';
import type { KeyRing } from '../../src/modules/auth/keys.js';
import type { ModuleName } from '../../src/modules/registry.js';
import { REDIS_URL } from '../setup/services.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  database: Database;
  /** The shards of the tasks data (the one database unless the env sets TASK_SHARDS). */
  shards: TaskShards;
  testDb: TestDatabase | undefined;
  redis: Redis | undefined;
  keys: KeyRing;
  /** The app's Idempotency-Key store (Redis or memory), for tests that claim a key themselves. */
  idempotency: IdempotencyStore;
  /**
   * Delivers the account events waiting in the outbox (user.created / updated / deleted) to the
   * consumers of the tasks and notifications modules, as the relay and the bus would, and marks
   * them published; task events stay pending. Returns how many were delivered. A test app runs no
   * relay: what an account's deletion does to the other modules' data happens here.
   */
  deliverAccountEvents(): Promise<number>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Run on PGlite in memory and in-process stores instead of PostgreSQL and Redis. */
  embedded?: boolean;
  /** Environment on top of the test defaults (rate limiting is off unless a test turns it on). */
  env?: Record<string, string>;
  /** Another instance over the same database, Redis prefix and signing key, with its own pools. */
  sharing?: TestApp;
  /** Told about every route as it is added (the route table, as the server builds it). */
  onRoute?: (route: RouteOptions) => void;
  /** The feature modules the app serves, as `serve --modules` (default: all). */
  modules?: ReadonlySet<ModuleName>;
}

export const testPrivateKey = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

export async function createTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const shared = opts.sharing;
  if (shared && !shared.testDb) throw new Error('an embedded database cannot be shared between instances');
  const testDb = shared ? shared.testDb : opts.embedded ? undefined : await createTestDatabase();
  const prefix = shared?.config.redis.keyPrefix ?? `test:${randomBytes(6).toString('hex')}:`;
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATA_DIR: ':memory:',
    JWT_PRIVATE_KEY: shared?.config.jwt.privateKeyPem ?? testPrivateKey(),
    REDIS_KEY_PREFIX: prefix,
    RATE_LIMIT_ENABLED: 'false',
    ...(testDb ? { DATABASE_URL: testDb.url, REDIS_URL: shared?.config.redis.url ?? REDIS_URL } : {}),
    ...opts.env,
  });
  const infra = await openInfrastructure(config, pino({ level: 'silent' }), { modules: opts.modules });
  const app = await buildApp({ config, ...infra, ...(opts.onRoute ? { onRoute: opts.onRoute } : {}), ...(opts.modules ? { modules: opts.modules } : {}) });
  await app.ready();
  return {
    app,
    config,
    database: infra.database,
    shards: infra.shards,
    testDb,
    redis: infra.redis,
    keys: infra.keys,
    idempotency: infra.idempotency,
    deliverAccountEvents: accountEventsDeliverer(infra.database, infra.cache, infra.shards),
    async close() {
      await app.close();
      if (infra.redis && !shared) await deleteKeys(infra.redis, prefix);
      await infra.close();
      if (!shared) await testDb?.drop();
    },
  };
}

/** TestApp.deliverAccountEvents, for an app built over `database` (and its response cache, and its shards of the tasks data). */
export function accountEventsDeliverer(database: Database, cache?: ResponseCacheStore, shards: TaskShards = singleShard(database)): () => Promise<number> {
  const handlers = [
    createTasksAccountsHandler({ repos: new ShardRepositories(shards), dataChanged: (userId) => cache?.invalidateUser(userId) ?? Promise.resolve() }),
    createNotificationsAccountsHandler(new NotificationsRepository(database.db)),
  ];
  return async () => {
    const rows = await database.db
      .select({ id: outbox.id, payload: outbox.payload })
      .from(outbox)
      .where(and(isNull(outbox.publishedAt), like(outbox.type, 'user.%')))
      .orderBy(asc(outbox.createdAt), asc(outbox.id));
    for (const row of rows) {
      for (const handle of handlers) await handle(row.payload);
      await database.db.update(outbox).set({ publishedAt: new Date() }).where(eq(outbox.id, row.id));
    }
    return rows.length;
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
/** What the helpers below call: app.inject, or the same over HTTP (test/helpers/http-inject.ts). */
export type Injector = Pick<FastifyInstance, 'inject'>;

export async function register(app: Injector, email = uniqueEmail(), password = 'correct horse battery'): Promise<SessionBody> {
  const res = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password } });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return res.json<SessionBody>();
}

/** app.inject with the user's Bearer token. */
export function as(app: Injector, token: string) {
  return (opts: InjectOptions): Promise<LightMyRequestResponse> =>
    app.inject({ ...opts, headers: { authorization: `Bearer ${token}`, ...opts.headers } });
}

/** Registers a user, promotes them to admin in the database, and logs in again for an admin token. */
export async function registerAdmin(t: { app: Injector; database: Database }): Promise<SessionBody> {
  const email = uniqueEmail('admin');
  const password = 'admin password 1';
  const s = await register(t.app, email, password);
  const { UsersRepository } = await import('../../src/modules/users/repository.js');
  await new UsersRepository(t.database.db).update(s.user.id, { role: 'admin' });
  const res = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } });
  return res.json<SessionBody>();
}
