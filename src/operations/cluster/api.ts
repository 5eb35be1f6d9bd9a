// The API instances of the local topology: `node dist/cli.js serve` with the production node
// flags, each on its own loopback port and metrics port, all on the same PgBouncer, replicas,
// Redis, RabbitMQ and signing key, behind NGINX.
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../node-flags.js';
import { httpOk, LOOPBACK, type CommandLine } from './processes.js';

/** The built CLI (dist/cli.js) and the project root (where migrations/ is). */
export const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** What the instances share: where the services are, and who may set X-Forwarded-For. */
export interface Topology {
  /** Through PgBouncer (transaction pooling: no prepared statements); the instance's service's database when split. */
  databaseUrl: string;
  /** The streaming replicas, for DATABASE_READ_URLS. */
  readUrls: string[];
  redisUrl: string;
  /** --redis-sentinel: REDIS_SENTINELS (host:port) and REDIS_SENTINEL_MASTER instead of REDIS_URL. */
  redisSentinel?: { master: string; sentinels: string[] };
  /** AMQP_URL: the broker, or the RabbitMQ cluster's nodes, comma-separated. */
  amqpUrl: string;
  /** NGINX's address as the instances see it: the only proxy whose X-Forwarded-For counts. */
  trustProxy: string;
  /** The auth service's (the monolith's) signing key; never given to the other services. */
  jwtPrivateKey: string;
  /**
   * The extra shards of the tasks data (TASK_SHARDS, SHARD_<NAME>_URL, SHARD_<NAME>_READ_URLS:
   * shards.ts shardVariables), for the instances that run the tasks module; empty or absent: main alone.
   */
  shardEnv?: Record<string, string>;
}

export interface Instance {
  name: string;
  port: number;
  metricsPort: number;
  /** DATA_DIR: unused with PostgreSQL and a given key, but never the shared ./data. */
  dataDir: string;
  /** The split topology: the one module it serves (`serve --modules`); all of them when absent. */
  service?: string;
  /** Where a service without the auth module fetches the auth service's keys (AUTH_JWKS_URL). */
  authJwksUrl?: string;
}

/** Defaults for a local production-like instance, which the runner's own environment may change. */
const DEFAULTS: Record<string, string> = {
  NODE_ENV: 'production',
  LOG_LEVEL: 'info',
  // Long enough for a request NGINX has just sent to arrive; short enough for a quick roll.
  SHUTDOWN_DRAIN_MS: '2000',
};

/**
 * `serve` for one instance. The environment is the defaults, then what the runner was given
 * (the variables serve reads), then what the topology decides, which nothing overrides.
 */
export function apiCommand(i: Instance, t: Topology, inherited: Record<string, string>): CommandLine {
  const env: Record<string, string> = {
    ...DEFAULTS,
    ...inherited,
    HOST: LOOPBACK,
    PORT: String(i.port),
    METRICS_HOST: LOOPBACK,
    METRICS_PORT: String(i.metricsPort),
    DATA_DIR: i.dataDir,
    DATABASE_URL: t.databaseUrl,
    DATABASE_PREPARE: 'false',
    MIGRATE_ON_START: 'false',
    REDIS_URL: t.redisUrl,
    AMQP_URL: t.amqpUrl,
    TRUST_PROXY: t.trustProxy,
    JWT_PRIVATE_KEY: inherited.JWT_PRIVATE_KEY ?? t.jwtPrivateKey,
  };
  if (t.redisSentinel) {
    delete env.REDIS_URL;
    delete env.REDIS_HOST;
    delete env.REDIS_PORT;
    env.REDIS_SENTINELS = t.redisSentinel.sentinels.join(',');
    env.REDIS_SENTINEL_MASTER = t.redisSentinel.master;
  } else {
    delete env.REDIS_SENTINELS;
    delete env.REDIS_SENTINEL_MASTER;
  }
  // Only the auth service signs: the others verify with its published keys (AUTH_JWKS_URL) and
  // never hold the private key.
  if (i.service !== undefined && i.service !== 'auth') delete env.JWT_PRIVATE_KEY;
  if (t.readUrls.length > 0) env.DATABASE_READ_URLS = t.readUrls.join(',');
  else delete env.DATABASE_READ_URLS;
  if (i.authJwksUrl) env.AUTH_JWKS_URL = i.authJwksUrl;
  // The shards are the topology's: a TASK_SHARDS the runner was given names servers it did not
  // start. Only the instances that run the tasks module (the monolith's, the tasks service's) get them.
  delete env.TASK_SHARDS;
  if (i.service === undefined || i.service === 'tasks') Object.assign(env, t.shardEnv ?? {});
  // Each service of the split topology names itself in its metrics (the `service` label) and
  // traces (service.name), unless the runner chose a name; monolith instances keep task-api's.
  if (i.service && inherited.OTEL_SERVICE_NAME === undefined) env.OTEL_SERVICE_NAME = `task-api-${i.service}`;
  const modules = i.service ? ['--modules', i.service] : [];
  return { command: process.execPath, args: [...NODE_FLAGS, CLI, 'serve', ...modules], env, cwd: ROOT };
}

/**
 * `task-api worker` (`cluster start --worker`): the outbox relay and every consumer without HTTP,
 * with an instance's environment (the same database, Redis, broker nodes, shards), its metrics on
 * the instance's metrics port (forced on: the runner knows it is ready when they answer). It
 * competes with the instances' consumers for the same queues, as a separate worker does in
 * production.
 */
export function workerCommand(i: Instance, t: Topology, inherited: Record<string, string>): CommandLine {
  const serve = apiCommand(i, t, inherited);
  return { ...serve, env: { ...serve.env, METRICS_ENABLED: 'true' }, args: [...NODE_FLAGS, CLI, 'worker'] };
}

export const apiUrl = (port: number) => `http://${LOOPBACK}:${port}`;

/** GET /health on the instance's own port answers 200: database reachable, not draining. */
export const apiHealthy = (port: number) => httpOk(`${apiUrl(port)}/health`);
