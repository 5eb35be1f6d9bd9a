// Opens the infrastructure the configuration asks for: real PostgreSQL and Redis when their URLs
// are set, the embedded stand-ins (PGlite, in-process memory) when not.
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import type { HealthCheck } from './http/health.js';
import { openDatabase, type Database } from './infra/db/database.js';
import { migrate, migrationState } from './infra/db/migrate.js';
import { openReadReplicas } from './infra/db/read-replicas.js';
import { singleShard, type TaskShards } from './infra/shards/set.js';
import { openTaskShards } from './infra/shards/shards.js';
import { MemoryResponseCache } from './infra/cache/memory.js';
import { RedisResponseCache } from './infra/cache/redis.js';
import type { ResponseCacheStore } from './infra/cache/types.js';
import { MemoryIdempotencyStore } from './infra/idempotency/memory.js';
import { RedisIdempotencyStore } from './infra/idempotency/redis.js';
import type { IdempotencyStore } from './infra/idempotency/types.js';
import { createRedis } from './infra/redis.js';
import { MemoryTokenStore } from './infra/token-store/memory.js';
import { RedisTokenStore } from './infra/token-store/redis.js';
import type { RefreshTokenStore } from './infra/token-store/types.js';
import { KeyRepository, StoredKeyRing } from './modules/auth/key-store.js';
import { loadKeyRing, noSigningKeys, type KeyRing } from './modules/auth/keys.js';
import type { ModuleName } from './modules/registry.js';
import { Metrics } from './observability/metrics.js';
import { sqlSpanObserver } from './observability/trace-context.js';
import { StartupError } from './shared/errors.js';

export interface Infrastructure {
  database: Database;
  /** The shards of the tasks data: the one database unless TASK_SHARDS is set and the tasks module runs here. */
  shards: TaskShards;
  redis: Redis | undefined;
  tokenStore: RefreshTokenStore;
  cache: ResponseCacheStore | undefined;
  /** Idempotency keys: in Redis when configured (shared by every instance), else in process memory. */
  idempotency: IdempotencyStore;
  keys: KeyRing;
  healthChecks: HealthCheck[];
  /** Prometheus metrics (own registry); undefined when METRICS_ENABLED=false. */
  metrics: Metrics | undefined;
  close(): Promise<void>;
}

/**
 * Refuses to start on a database that lacks a migration of this version: every request would
 * fail on a missing table or column while /health said ok. A database with migrations this
 * version does not know (a newer version applied them) is served, with a warning: a migration
 * keeps the previous version working (docs/decisions.md), so a rollback or a rolling deployment
 * keeps working too.
 */
async function checkSchema(database: Database, log: FastifyBaseLogger): Promise<void> {
  const { pending, unknown } = await migrationState(database);
  if (pending.length > 0) {
    const setting = database.kind === 'pglite' ? 'DATA_DIR' : 'DATABASE_URL';
    await database.close();
    throw new StartupError(
      `The database is missing ${pending.length} migration${pending.length === 1 ? '' : 's'} of this version (${pending.join(', ')}): ` +
        `run \`npm run migrate\` (task-api migrate) with the same ${setting}, or start with MIGRATE_ON_START=true.`,
    );
  }
  if (unknown.length > 0) {
    log.warn({ unknown }, 'the database has migrations this version does not know (a newer version applied them); serving on, as each migration keeps the previous version working');
  }
}

export interface InfrastructureOptions {
  /** The feature modules the process runs: the signing keys are opened only where auth runs. */
  modules?: ReadonlySet<ModuleName> | undefined;
}

/**
 * Where the auth module runs: the shared key store (signing_keys), read again periodically, with
 * JWT_PRIVATE_KEY (or the key under DATA_DIR) while the store is empty. Elsewhere: JWT_PRIVATE_KEY's
 * fixed keys when set (verification only, as before the key store), else no key at all (tokens
 * are verified against AUTH_JWKS_URL).
 */
async function openKeys(config: Config, database: Database, log: FastifyBaseLogger, modules: ReadonlySet<ModuleName> | undefined): Promise<{ keys: KeyRing; close(): void }> {
  const fixed = () => loadKeyRing({ ...config.jwt, dataDir: config.dataDir });
  if (modules && !modules.has('auth')) return { keys: config.jwt.privateKeyPem ? await fixed() : noSigningKeys(), close: () => undefined };
  const ring = await StoredKeyRing.open(new KeyRepository(database.db), {
    reloadSeconds: config.jwt.keyReloadSeconds,
    fallback: fixed,
    warn: (obj, msg) => log.warn(obj, msg),
  });
  ring.start();
  if (ring.generated) {
    log.warn({ kid: ring.signing.kid }, 'JWT_PRIVATE_KEY is not set: using a key generated under DATA_DIR (wrong for several instances)');
  }
  if (ring.stored && config.jwt.privateKeyPem) log.info({ kid: ring.signing.kid }, 'signing keys come from the key store (task-api keys list); JWT_PRIVATE_KEY is not used');
  return { keys: ring, close: () => ring.close() };
}

export async function openInfrastructure(config: Config, log: FastifyBaseLogger, opts: InfrastructureOptions = {}): Promise<Infrastructure> {
  const metrics = config.metrics.enabled ? new Metrics({ service: config.tracing.serviceName }) : undefined;
  // Statement observers see postgres.js only (PGlite is one in-process connection, no pool). SQL
  // spans are always observed: without a registered tracing SDK they stop at their first check.
  const observers = config.database.url ? [sqlSpanObserver, ...(metrics ? [metrics.databaseObserver(config.database.poolMax)] : [])] : [];
  const database = await openDatabase({ ...config.database, dataDir: config.dataDir, observers, warn: (obj, msg) => log.warn(obj, msg) });
  if (database.kind === 'pglite') {
    log.warn({ dataDir: config.dataDir }, 'DATABASE_URL is not set: using the embedded PostgreSQL (PGlite), fine for one instance only');
  }
  if (config.database.migrateOnStart) {
    const applied = await migrate(database, { taskPartitions: config.database.taskPartitions });
    if (applied.length) log.info({ applied }, 'migrations applied');
  }
  await checkSchema(database, log);
  const redis = config.redis.url || config.redis.sentinels ? createRedis(config.redis) : undefined;
  if (redis) redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis error'));
  else log.warn('neither REDIS_URL nor REDIS_SENTINELS is set: refresh tokens are kept in process memory (one instance only)');
  const tokenStore: RefreshTokenStore = redis ? new RedisTokenStore(redis) : new MemoryTokenStore();
  // DATABASE_READ_URLS: reads routed to replicas, read-your-writes per user (src/infra/db/router.ts).
  const replicas =
    config.database.replicas.length > 0
      ? await openReadReplicas(database, config.database, { redis, recorder: metrics?.readRouting(), observers: [sqlSpanObserver], log })
      : undefined;
  const routed = replicas ?? database;

  let cache: ResponseCacheStore | undefined;
  if (config.cache.enabled) {
    const { ttlSeconds, maxBytes, maxEntryBytes } = config.cache;
    cache = redis ? new RedisResponseCache(redis, ttlSeconds, log, maxEntryBytes) : new MemoryResponseCache({ maxBytes, maxEntryBytes });
  }

  const idempotency: IdempotencyStore = redis ? new RedisIdempotencyStore(redis) : new MemoryIdempotencyStore();

  // The shards are the tasks module's: a process without it has no use for them. A refusal to
  // start (the map names shards this process does not know) closes what is open so far.
  const shards =
    !opts.modules || opts.modules.has('tasks')
      ? await openTaskShards(config, routed, {
          redis,
          recorder: metrics?.readRouting(),
          observers: (poolMax) => [sqlSpanObserver, ...(metrics ? [metrics.databaseObserver(poolMax)] : [])],
          replicaObservers: [sqlSpanObserver],
          log,
        }).catch(async (err: unknown) => {
          if (redis) redis.disconnect();
          await routed.close();
          throw err;
        })
      : singleShard(routed);
  if (metrics && shards.sharded) shards.recorder = metrics.shardRecorder(() => shards.map()?.version);
  const openedKeys = await openKeys(config, routed, log, opts.modules);
  const keys = openedKeys.keys;
  const healthChecks: HealthCheck[] = redis
    ? [{ name: 'redis', critical: false, check: async () => void (await redis.ping()) }]
    : [];
  for (const shard of shards.all.slice(1)) {
    // Not critical: the other shards' owners are served on; this one's tasks answer 503.
    healthChecks.push({ name: `shard:${shard.name}`, critical: false, check: () => shard.database.ping() });
  }
  if (replicas) {
    // Not critical: without a readable replica every read goes to the primary.
    healthChecks.push({
      name: 'replicas',
      critical: false,
      check: async () => {
        if (replicas.monitor.readable().length === 0) throw new Error('no replica is readable (down or lagging): reads go to the primary');
      },
    });
  }
  return {
    database: routed,
    shards,
    redis,
    tokenStore,
    cache,
    idempotency,
    keys,
    healthChecks,
    metrics,
    async close() {
      openedKeys.close();
      await shards.close();
      await tokenStore.close();
      if (redis) await redis.quit().catch(() => redis.disconnect());
      await routed.close();
    },
  };
}
