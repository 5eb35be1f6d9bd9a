// The one place that reads the environment. Everything else receives a typed Config.
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { parseDatabaseUrl, splitUrls, type DatabaseUrl } from './shared/database-url.js';

const Bool = Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')]);
const Int = (min: number, max: number) => Type.String({ pattern: '^[0-9]+$', minimum: min, maximum: max });

// Every variable the process understands, as strings. Defaults live in build() below.
const EnvSchema = Type.Object({
  NODE_ENV: Type.Optional(Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')])),
  PORT: Type.Optional(Int(0, 65535)),
  HOST: Type.Optional(Type.String({ minLength: 1 })),
  LOG_LEVEL: Type.Optional(
    Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
  ),
  DATA_DIR: Type.Optional(Type.String({ minLength: 1 })),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_POOL_MAX: Type.Optional(Int(1, 1000)),
  DATABASE_PREPARE: Type.Optional(Bool),
  DATABASE_READ_URLS: Type.Optional(Type.String({ pattern: '^\\s*postgres(ql)?://' })),
  DATABASE_REPLICA_MAX_LAG_MS: Type.Optional(Int(100, 3600000)),
  DATABASE_REPLICA_POLL_MS: Type.Optional(Int(10, 60000)),
  MIGRATE_ON_START: Type.Optional(Bool),
  TASK_SHARDS: Type.Optional(Type.String({ pattern: '^\\s*[a-z][a-z0-9-]*(\\s*,\\s*[a-z][a-z0-9-]*)*\\s*$' })),
  SHARD_MAP_REFRESH_MS: Type.Optional(Int(10, 60000)),
  SHARD_SCATTER_TIMEOUT_MS: Type.Optional(Int(10, 600000)),
  TASK_PARTITIONS: Type.Optional(Int(1, 1024)),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_HOST: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_PORT: Type.Optional(Int(1, 65535)),
  REDIS_PASSWORD: Type.Optional(Type.String()),
  REDIS_KEY_PREFIX: Type.Optional(Type.String()),
  REDIS_SENTINELS: Type.Optional(Type.String({ pattern: '^\\s*[^\\s,:]+:[0-9]+(\\s*,\\s*[^\\s,:]+:[0-9]+)*\\s*$' })),
  REDIS_SENTINEL_MASTER: Type.Optional(Type.String({ minLength: 1, pattern: '^\\S+$' })),
  JWT_PRIVATE_KEY: Type.Optional(Type.String({ pattern: 'BEGIN PRIVATE KEY' })),
  JWT_PUBLIC_KEYS: Type.Optional(Type.String({ pattern: 'BEGIN PUBLIC KEY' })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_ACCESS_TTL_SECONDS: Type.Optional(Int(30, 86400)),
  JWT_REFRESH_TTL_SECONDS: Type.Optional(Int(60, 31536000)),
  JWT_KEY_PUBLISH_AHEAD_SECONDS: Type.Optional(Int(0, 604800)),
  JWT_KEY_RELOAD_SECONDS: Type.Optional(Int(1, 3600)),
  AUTH_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  AUTH_JWKS_COOLDOWN_MS: Type.Optional(Int(0, 3600000)),
  ADMIN_EMAIL: Type.Optional(Type.String({ pattern: '^[^@\\s]+@[^@\\s]+$' })),
  ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 8, maxLength: 128 })),
  BODY_LIMIT_BYTES: Type.Optional(Int(1024, 10485760)),
  HTTP_REQUEST_TIMEOUT_MS: Type.Optional(Int(100, 600000)),
  HTTP_ANSWER_DEADLINE_MS: Type.Optional(Int(0, 600000)),
  HTTP_HEADERS_TIMEOUT_MS: Type.Optional(Int(100, 600000)),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: Type.Optional(Int(100, 600000)),
  HTTP_CONNECTION_TIMEOUT_MS: Type.Optional(Int(100, 3600000)),
  SHUTDOWN_DRAIN_MS: Type.Optional(Int(0, 120000)),
  TRUST_PROXY: Type.Optional(Type.String()),
  CORS_ORIGINS: Type.Optional(Type.String()),
  METRICS_ENABLED: Type.Optional(Bool),
  METRICS_HOST: Type.Optional(Type.String({ minLength: 1 })),
  METRICS_PORT: Type.Optional(Int(0, 65535)),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://' })),
  OTEL_SERVICE_NAME: Type.Optional(Type.String({ minLength: 1 })),
  LOGSTASH_URL: Type.Optional(Type.String({ pattern: '^tcp://[^:/]+:[0-9]+$' })),
  CACHE_ENABLED: Type.Optional(Bool),
  CACHE_TTL_SECONDS: Type.Optional(Int(1, 86400)),
  CACHE_MAX_BYTES: Type.Optional(Int(65536, 17179869184)),
  CACHE_MAX_ENTRY_BYTES: Type.Optional(Int(1024, 67108864)),
  IDEMPOTENCY_TTL_SECONDS: Type.Optional(Int(1, 604800)),
  IDEMPOTENCY_LEASE_MS: Type.Optional(Int(1000, 600000)),
  TASKS_PER_USER_MAX: Type.Optional(Int(1, 100000000)),
  WEBHOOKS_PER_USER_MAX: Type.Optional(Int(1, 10000)),
  RATE_LIMIT_ENABLED: Type.Optional(Bool),
  RATE_LIMIT_POINTS: Type.Optional(Int(1, 1000000)),
  RATE_LIMIT_DURATION: Type.Optional(Int(1, 86400)),
  RATE_LIMIT_BLOCK_DURATION: Type.Optional(Int(0, 86400)),
  RATE_LIMIT_POLICIES: Type.Optional(Type.String({ pattern: '^\\s*\\{' })),
  // One broker, or the nodes of a cluster: comma-separated, each amqp(s)://... (parseAmqpUrls).
  AMQP_URL: Type.Optional(Type.String({ pattern: '^\\s*amqps?://' })),
  AMQP_EXCHANGE: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  OUTBOX_RELAY_ENABLED: Type.Optional(Bool),
  OUTBOX_POLL_MS: Type.Optional(Int(10, 60000)),
  OUTBOX_BATCH: Type.Optional(Int(1, 10000)),
  OUTBOX_RETENTION_HOURS: Type.Optional(Int(1, 8760)),
  EVENTS_DELIVERY_LIMIT: Type.Optional(Int(1, 100)),
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://' })),
  MAIL_FROM: Type.Optional(Type.String({ minLength: 3, pattern: '@' })),
  WEBHOOK_ALLOW_PRIVATE_TARGETS: Type.Optional(Bool),
  WEBHOOK_MAX_ATTEMPTS: Type.Optional(Int(1, 50)),
  WEBHOOK_TIMEOUT_MS: Type.Optional(Int(100, 60000)),
  WEBHOOK_BACKOFF_BASE_MS: Type.Optional(Int(0, 3600000)),
  WEBHOOK_BACKOFF_MAX_MS: Type.Optional(Int(0, 86400000)),
  DELIVERY_RETENTION_DAYS: Type.Optional(Int(1, 3650)),
});
type Env = Static<typeof EnvSchema>;

/** The names of every variable the process reads (`task-api cluster` hands these on to `serve`). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(EnvSchema.properties);

export interface Config {
  env: 'development' | 'production' | 'test';
  http: { host: string; port: number; bodyLimit: number; trustProxy: string | boolean; timeouts: HttpTimeouts };
  logLevel: string;
  dataDir: string;
  database: DatabaseConfig;
  shards: ShardsConfig;
  /**
   * url: one Redis server; sentinels: the master named sentinelMaster, found (and followed across
   * a failover) through these Sentinels. At most one of the two is set.
   */
  redis: { url: string | undefined; keyPrefix: string; sentinels?: { host: string; port: number }[]; sentinelMaster?: string; password?: string };
  jwt: {
    privateKeyPem: string | undefined;
    publicKeysPem: string[];
    issuer: string;
    audience: string;
    accessTtlSeconds: number;
    refreshTtlSeconds: number;
    /** `keys rotate`: a new key is published this long before it signs (longer than verifiers cache the JWKS). */
    keyPublishAheadSeconds: number;
    /** Auth instances read the shared key store again this often. */
    keyReloadSeconds: number;
  };
  /** Where processes without the auth module get the public keys of access tokens. */
  authService: { jwksUrl: string | undefined; jwksCooldownMs: number };
  admin: { email: string; password: string } | undefined;
  shutdownDrainMs: number;
  /** maxBytes bounds the in-process store; maxEntryBytes: larger responses are never cached (either store). */
  cache: { enabled: boolean; ttlSeconds: number; maxBytes: number; maxEntryBytes: number };
  /** Idempotency-Key on authenticated POST and PATCH: how long an answered key is kept and replayed. */
  idempotency: { ttlSeconds: number; leaseMs: number };
  /** How many of each collection one user may own (a create past it is refused with 409). */
  limits: { tasksPerUser: number; webhooksPerUser: number };
  /** Prometheus metrics on their own port, never the public one. */
  metrics: { enabled: boolean; host: string; port: number };
  /** OpenTelemetry tracing: on only when an OTLP endpoint is configured. */
  tracing: { endpoint: string | undefined; serviceName: string };
  /** Log shipping besides stdout: JSON lines over TCP (the Logstash tcp input with json_lines). */
  logstash: { host: string; port: number } | undefined;
  /** Browser origins allowed to call the API (exact scheme://host[:port]); empty: CORS off. */
  cors: { origins: string[] };
  rateLimit: { enabled: boolean; policies: Record<RateLimitPolicyName, RateLimitPolicy> };
  /** Task events: the outbox relay and the bus (RabbitMQ with AMQP_URL, in process without). */
  events: {
    /**
     * AMQP_URL: one broker, or the nodes of one RabbitMQ cluster (the bus connects to the first
     * that answers and, when that connection is lost, to the next); empty: the in-process bus.
     */
    amqpUrls: string[];
    exchange: string;
    relayEnabled: boolean;
    pollMs: number;
    batchSize: number;
    retentionHours: number;
    /** Deliveries of one event to one consumer before it is dead-lettered (both buses). */
    deliveryLimit: number;
  };
  /** Notifications: email over SMTP (off without SMTP_URL) and webhook delivery. */
  notifications: {
    smtpUrl: string | undefined;
    mailFrom: string;
    webhooks: { allowPrivateTargets: boolean; maxAttempts: number; timeoutMs: number; backoffBaseMs: number; backoffMaxMs: number };
    /** Finished webhook and email deliveries are deleted after this many days. */
    deliveryRetentionDays: number;
  };
}

/** A PostgreSQL pool: where, how many connections, how long to wait for one (see src/shared/database-url.ts). */
export interface DatabaseTarget {
  /** postgres:// without the pool parameters (connection_limit, pool_timeout, connect_timeout, ...). */
  url: string;
  poolMax: number;
  /** Seconds to open a connection; 0: no limit. */
  connectTimeoutSeconds: number;
  /** How long a statement or transaction may wait for a free connection; 0: no limit. */
  poolTimeoutMs: number;
}

/** A shard of the tasks data besides the main one (TASK_SHARDS, SHARD_<NAME>_URL, SHARD_<NAME>_READ_URLS). */
export interface ShardTarget {
  name: string;
  primary: DatabaseTarget;
  replicas: DatabaseTarget[];
}

/** Sharding of the tasks data by owner (src/infra/shards/). */
export interface ShardsConfig {
  /** The shards besides `main` (the database of DATABASE_URL); empty: not sharded (no map, no checks). */
  extra: ShardTarget[];
  /** How often each instance polls the bucket map's version. */
  mapRefreshMs: number;
  /** How long a read across shards (the admin's list) waits for each shard. */
  scatterTimeoutMs: number;
}

export interface DatabaseConfig extends Omit<DatabaseTarget, 'url'> {
  /** The primary (or the PgBouncer in front of it); undefined: the embedded PGlite. */
  url: string | undefined;
  prepare: boolean;
  migrateOnStart: boolean;
  taskPartitions: number;
  /** Streaming replicas that take the reads routed to them (DATABASE_READ_URLS); empty: none. */
  replicas: DatabaseTarget[];
  /** A replica further behind the primary than this is not read from. */
  replicaMaxLagMs: number;
  /** How often each replica's replayed WAL position (and the primary's) is polled. */
  replicaPollMs: number;
}

/** Server timeouts, all in milliseconds (see README, Configuration). */
export interface HttpTimeouts {
  /** The whole request (headers and body) must arrive within this; then 408 and the connection closes. */
  requestMs: number;
  /** The request line and headers must arrive within this. */
  headersMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
  /** A connection with no traffic either way for this long (mid-request) is closed. */
  connectionMs: number;
  /** A request without an answer this long after it arrived gets 503 (src/http/deadline.ts); 0: none. */
  answerMs: number;
}

/** rate-limiter-flexible's own option names: `points` per `duration` seconds, then blocked `blockDuration` seconds. */
export interface RateLimitPolicy {
  points: number;
  duration: number;
  blockDuration: number;
}
export const RATE_LIMIT_POLICY_NAMES = ['default', 'auth-ip', 'login-account-ip', 'login-account', 'password-change'] as const;
export type RateLimitPolicyName = (typeof RATE_LIMIT_POLICY_NAMES)[number];

const DEFAULT_POLICIES: Record<RateLimitPolicyName, RateLimitPolicy> = {
  // The seed's distributed limit: 10 requests a second per user (or IP), then 60 s blocked.
  default: { points: 10, duration: 1, blockDuration: 60 },
  // Login and register attempts from one IP address.
  'auth-ip': { points: 10, duration: 60, blockDuration: 300 },
  // Failed logins to one account from one client IP (OWASP: lock the account per source). A
  // successful login from that IP clears it, so an attacker elsewhere cannot lock the owner out.
  'login-account-ip': { points: 5, duration: 60, blockDuration: 900 },
  // Failed logins to one account from anywhere: high enough that a handful of attempts cannot
  // lock the owner out, low enough to stop guessing spread over many addresses.
  'login-account': { points: 100, duration: 3600, blockDuration: 900 },
  // Password changes by one user (each one checks the current password).
  'password-change': { points: 5, duration: 900, blockDuration: 900 },
};

function logstashOf(url: string | undefined): Config['logstash'] {
  if (url === undefined) return undefined;
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

/** CORS_ORIGINS: comma-separated origins, each exactly as a browser sends it in Origin. */
function parseOrigins(raw: string | undefined, problems: string[]): string[] {
  if (raw === undefined) return [];
  const origins = raw.split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of origins) {
    let serialised: string | undefined;
    try {
      const url = new URL(origin);
      serialised = url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
    } catch {
      serialised = undefined;
    }
    // Browsers send the serialised form (lower-case host, no default port, no path), so only that can match.
    if (serialised !== origin) problems.push(`CORS_ORIGINS: ${origin} is not an origin; write it as http(s)://host[:port], e.g. ${serialised ?? 'https://app.example.com'}`);
  }
  return origins;
}

function parsePolicies(raw: string | undefined, problems: string[]): Partial<Record<RateLimitPolicyName, RateLimitPolicy>> {
  if (raw === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    problems.push('RATE_LIMIT_POLICIES: must be a JSON object');
    return {};
  }
  const out: Partial<Record<RateLimitPolicyName, RateLimitPolicy>> = {};
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (!(RATE_LIMIT_POLICY_NAMES as readonly string[]).includes(name)) {
      problems.push(`RATE_LIMIT_POLICIES: unknown policy ${name} (known: ${RATE_LIMIT_POLICY_NAMES.join(', ')})`);
      continue;
    }
    const v = value as Partial<RateLimitPolicy>;
    const ok = (n: unknown, min: number) => typeof n === 'number' && Number.isInteger(n) && n >= min;
    if (!ok(v.points, 1) || !ok(v.duration, 1) || !(v.blockDuration === undefined || ok(v.blockDuration, 0))) {
      problems.push(`RATE_LIMIT_POLICIES: ${name} needs integer points >= 1, duration >= 1 and optional blockDuration >= 0`);
      continue;
    }
    out[name as RateLimitPolicyName] = { points: v.points!, duration: v.duration!, blockDuration: v.blockDuration ?? 0 };
  }
  return out;
}

/** Seconds to open a database connection when the URL does not say (postgres.js would wait 30). */
const CONNECT_TIMEOUT_SECONDS = 10;

function targetOf(parsed: DatabaseUrl, poolMax: number): DatabaseTarget {
  return {
    url: parsed.url,
    poolMax: parsed.connectionLimit ?? poolMax,
    connectTimeoutSeconds: parsed.connectTimeoutSeconds ?? CONNECT_TIMEOUT_SECONDS,
    poolTimeoutMs: (parsed.poolTimeoutSeconds ?? 0) * 1000,
  };
}

/** DATABASE_URL (with Prisma's pool parameters), DATABASE_POOL_MAX, DATABASE_PREPARE and the replicas. */
function parseDatabase(env: Env, problems: string[]): DatabaseConfig {
  const primary = env.DATABASE_URL === undefined ? undefined : parseDatabaseUrl(env.DATABASE_URL, 'DATABASE_URL', problems);
  const envPoolMax = env.DATABASE_POOL_MAX === undefined ? undefined : int(env.DATABASE_POOL_MAX, 10);
  if (envPoolMax !== undefined && primary?.connectionLimit !== undefined && envPoolMax !== primary.connectionLimit) {
    problems.push(`DATABASE_POOL_MAX: ${envPoolMax} disagrees with DATABASE_URL connection_limit=${primary.connectionLimit}; set one of them`);
  }
  if (primary?.pgbouncer === true && env.DATABASE_PREPARE !== undefined && bool(env.DATABASE_PREPARE, true)) {
    problems.push('DATABASE_PREPARE: true contradicts DATABASE_URL pgbouncer=true (PgBouncer < 1.21 in transaction mode cannot carry prepared statements)');
  }
  const poolMax = envPoolMax ?? 10;
  const readUrls = env.DATABASE_READ_URLS === undefined ? [] : splitUrls(env.DATABASE_READ_URLS);
  readUrls.forEach((u, i) => {
    if (!/^postgres(ql)?:\/\//.test(u)) problems.push(`DATABASE_READ_URLS: entry ${i + 1} is not a postgres:// URL`);
  });
  if (readUrls.length > 0 && env.DATABASE_URL === undefined) {
    problems.push('DATABASE_READ_URLS: needs DATABASE_URL (the primary); the embedded database has no replicas');
  }
  const replicas = readUrls.map((u, i) => targetOf(parseDatabaseUrl(u, `DATABASE_READ_URLS[${i + 1}]`, problems), poolMax));
  return {
    ...(primary ? targetOf(primary, poolMax) : { poolMax, connectTimeoutSeconds: CONNECT_TIMEOUT_SECONDS, poolTimeoutMs: 0 }),
    url: primary?.url,
    prepare: primary?.pgbouncer === true ? false : bool(env.DATABASE_PREPARE, true),
    migrateOnStart: bool(env.MIGRATE_ON_START, env.DATABASE_URL === undefined),
    taskPartitions: int(env.TASK_PARTITIONS, 4),
    replicas,
    replicaMaxLagMs: int(env.DATABASE_REPLICA_MAX_LAG_MS, 5000),
    replicaPollMs: int(env.DATABASE_REPLICA_POLL_MS, 200),
  };
}

/** The environment variable of a shard's setting: SHARD_<NAME>_<WHAT>, the name upper-cased, '-' as '_'. */
export const shardVariable = (name: string, what: 'URL' | 'READ_URLS') => `SHARD_${name.toUpperCase().replace(/-/g, '_')}_${what}`;

/** TASK_SHARDS and each shard's SHARD_<NAME>_URL / SHARD_<NAME>_READ_URLS (read from the raw environment). */
function parseShards(env: Env, source: NodeJS.ProcessEnv, database: DatabaseConfig, problems: string[]): ShardsConfig {
  const names = env.TASK_SHARDS === undefined ? [] : env.TASK_SHARDS.split(',').map((n) => n.trim()).filter(Boolean);
  const extra: ShardTarget[] = [];
  if (names.length > 0 && database.url === undefined) problems.push('TASK_SHARDS: needs DATABASE_URL (the directory and the main shard); the embedded database is not sharded');
  const seen = new Set<string>();
  for (const name of names) {
    if (name.length > 31) {
      problems.push(`TASK_SHARDS: "${name}" is longer than 31 characters`);
      continue;
    }
    if (name === 'main' || seen.has(name)) {
      problems.push(`TASK_SHARDS: ${name === 'main' ? '"main" is the database of DATABASE_URL and is always a shard' : `"${name}" is named twice`}`);
      continue;
    }
    seen.add(name);
    const urlVar = shardVariable(name, 'URL');
    const readVar = shardVariable(name, 'READ_URLS');
    const url = source[urlVar];
    if (!url || !/^postgres(ql)?:\/\//.test(url)) {
      problems.push(`${urlVar}: required for shard "${name}" (TASK_SHARDS), a postgres:// URL`);
      continue;
    }
    const primary = parseDatabaseUrl(url, urlVar, problems);
    const readUrls = source[readVar] ? splitUrls(source[readVar]) : [];
    readUrls.forEach((u, i) => {
      if (!/^postgres(ql)?:\/\//.test(u)) problems.push(`${readVar}: entry ${i + 1} is not a postgres:// URL`);
    });
    extra.push({
      name,
      primary: targetOf(primary, database.poolMax),
      replicas: readUrls.map((u, i) => targetOf(parseDatabaseUrl(u, `${readVar}[${i + 1}]`, problems), database.poolMax)),
    });
  }
  return { extra, mapRefreshMs: int(env.SHARD_MAP_REFRESH_MS, 500), scatterTimeoutMs: int(env.SHARD_SCATTER_TIMEOUT_MS, 5000) };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const bool = (v: string | undefined, dflt: boolean) => (v === undefined ? dflt : v === 'true' || v === '1');
const int = (v: string | undefined, dflt: number) => (v === undefined ? dflt : Number.parseInt(v, 10));

function splitPems(pems: string): string[] {
  return pems.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
}

function rangeProblems(env: Env): string[] {
  const problems: string[] = [];
  const props = EnvSchema.properties as Record<string, { minimum?: number; maximum?: number }>;
  for (const [name, schema] of Object.entries(props)) {
    const raw = (env as Record<string, string | undefined>)[name];
    if (raw === undefined || schema.minimum === undefined || !/^[0-9]+$/.test(raw)) continue;
    const n = Number(raw);
    if (n < schema.minimum || n > (schema.maximum ?? Infinity)) {
      problems.push(`${name}: must be between ${schema.minimum} and ${schema.maximum} (got ${raw})`);
    }
  }
  return problems;
}

/**
 * AMQP_URL: one amqp(s):// URL or several, comma-separated (a comma inside a password is written
 * %2C, as URLs require); problems appended to `problems`.
 */
function parseAmqpUrls(raw: string | undefined, problems: string[]): string[] {
  if (raw === undefined) return [];
  const urls = raw.split(',').map((u) => u.trim());
  for (const url of urls) {
    let ok = false;
    try {
      const u = new URL(url);
      ok = (u.protocol === 'amqp:' || u.protocol === 'amqps:') && u.hostname !== '';
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`AMQP_URL: "${url.replace(/\/\/[^@/]*@/, '//***@')}" is not an amqp:// or amqps:// URL (several: comma-separated)`);
  }
  if (new Set(urls).size !== urls.length) problems.push('AMQP_URL: a URL is listed twice');
  return urls;
}

/** REDIS_SENTINELS: host:port, comma-separated; problems appended to `problems`. */
function parseSentinels(raw: string | undefined, problems: string[]): { host: string; port: number }[] | undefined {
  if (raw === undefined) return undefined;
  const out: { host: string; port: number }[] = [];
  for (const item of raw.split(',').map((x) => x.trim())) {
    const m = /^([^\s,:]+):([0-9]+)$/.exec(item);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      problems.push(`REDIS_SENTINELS: "${item}" is not host:port (port 1-65535)`);
      continue;
    }
    out.push({ host: m[1]!, port });
  }
  return out;
}

/**
 * The configuration with another deployment's databases: the environment without its own
 * database and shard settings (DATABASE_*, TASK_SHARDS, SHARD_*), then `databases` on top (an
 * operational command's --dir: the cluster's primaries).
 */
export function loadConfigWithDatabases(databases: Record<string, string>, source: NodeJS.ProcessEnv = process.env): Config {
  const own = Object.fromEntries(Object.entries(source).filter(([k]) => !/^(DATABASE_|TASK_SHARDS$|SHARD_)/.test(k)));
  return loadConfig({ ...own, ...databases });
}

/** Reads and validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const v = source[key];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const problems = [...Value.Errors(EnvSchema, raw)]
    .filter((e) => e.instancePath !== '')
    .map((e) => `${e.instancePath.slice(1)}: ${e.message}`);
  const unique = [...new Set(problems)];
  const env = raw as Env;
  unique.push(...rangeProblems(env));
  if (int(env.HTTP_HEADERS_TIMEOUT_MS, 10000) > int(env.HTTP_REQUEST_TIMEOUT_MS, 30000)) {
    unique.push('HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS (the request includes its headers)');
  }
  if (int(env.CACHE_MAX_ENTRY_BYTES, 256 * 1024) > int(env.CACHE_MAX_BYTES, 32 * 1024 * 1024)) {
    unique.push('CACHE_MAX_ENTRY_BYTES: must not exceed CACHE_MAX_BYTES');
  }
  if ((env.ADMIN_EMAIL === undefined) !== (env.ADMIN_PASSWORD === undefined)) {
    unique.push('ADMIN_EMAIL/ADMIN_PASSWORD: set both or neither');
  }
  if (env.JWT_PUBLIC_KEYS !== undefined && env.JWT_PRIVATE_KEY === undefined) {
    unique.push('JWT_PUBLIC_KEYS: requires JWT_PRIVATE_KEY');
  }
  if (env.REDIS_SENTINELS !== undefined && (env.REDIS_URL !== undefined || env.REDIS_HOST !== undefined)) {
    unique.push('REDIS_SENTINELS: set either REDIS_SENTINELS (with REDIS_SENTINEL_MASTER) or REDIS_URL/REDIS_HOST, not both');
  }
  if (env.REDIS_SENTINEL_MASTER !== undefined && env.REDIS_SENTINELS === undefined) {
    unique.push('REDIS_SENTINEL_MASTER: requires REDIS_SENTINELS');
  }
  const sentinels = parseSentinels(env.REDIS_SENTINELS, unique);
  const policyOverrides = parsePolicies(env.RATE_LIMIT_POLICIES, unique);
  const database = parseDatabase(env, unique);
  const shards = parseShards(env, source, database, unique);
  const corsOrigins = parseOrigins(env.CORS_ORIGINS, unique);
  const amqpUrls = parseAmqpUrls(env.AMQP_URL, unique);
  if (unique.length > 0) throw new ConfigError(unique);

  const nodeEnv = env.NODE_ENV ?? 'development';
  let redisUrl = env.REDIS_URL;
  if (redisUrl === undefined && env.REDIS_HOST !== undefined) {
    const auth = env.REDIS_PASSWORD ? `:${encodeURIComponent(env.REDIS_PASSWORD)}@` : '';
    redisUrl = `redis://${auth}${env.REDIS_HOST}:${env.REDIS_PORT ?? '6379'}`;
  }
  const trust = env.TRUST_PROXY;
  return {
    env: nodeEnv,
    http: {
      host: env.HOST ?? '0.0.0.0',
      port: int(env.PORT, 3000),
      bodyLimit: int(env.BODY_LIMIT_BYTES, 1024 * 1024),
      timeouts: {
        requestMs: int(env.HTTP_REQUEST_TIMEOUT_MS, 30000),
        headersMs: int(env.HTTP_HEADERS_TIMEOUT_MS, 10000),
        // Longer than the load balancer's upstream keepalive (60 s on the common ones), so it never reuses a socket we closed.
        keepAliveMs: int(env.HTTP_KEEP_ALIVE_TIMEOUT_MS, 72000),
        connectionMs: int(env.HTTP_CONNECTION_TIMEOUT_MS, 60000),
        answerMs: int(env.HTTP_ANSWER_DEADLINE_MS, 8000),
      },
      trustProxy: trust === undefined || trust === 'false' ? false : trust === 'true' ? true : trust,
    },
    logLevel: env.LOG_LEVEL ?? (nodeEnv === 'test' ? 'silent' : 'info'),
    dataDir: env.DATA_DIR ?? './data',
    database,
    shards,
    redis: {
      url: redisUrl,
      keyPrefix: env.REDIS_KEY_PREFIX ?? 'task-api:',
      ...(sentinels
        ? { sentinels, sentinelMaster: env.REDIS_SENTINEL_MASTER ?? 'task-api', ...(env.REDIS_PASSWORD ? { password: env.REDIS_PASSWORD } : {}) }
        : {}),
    },
    jwt: {
      privateKeyPem: env.JWT_PRIVATE_KEY,
      publicKeysPem: env.JWT_PUBLIC_KEYS ? splitPems(env.JWT_PUBLIC_KEYS) : [],
      issuer: env.JWT_ISSUER ?? 'task-api',
      audience: env.JWT_AUDIENCE ?? 'task-api',
      accessTtlSeconds: int(env.JWT_ACCESS_TTL_SECONDS, 900),
      refreshTtlSeconds: int(env.JWT_REFRESH_TTL_SECONDS, 30 * 24 * 3600),
      keyPublishAheadSeconds: int(env.JWT_KEY_PUBLISH_AHEAD_SECONDS, 900),
      keyReloadSeconds: int(env.JWT_KEY_RELOAD_SECONDS, 60),
    },
    authService: { jwksUrl: env.AUTH_JWKS_URL, jwksCooldownMs: int(env.AUTH_JWKS_COOLDOWN_MS, 30_000) },
    admin: env.ADMIN_EMAIL && env.ADMIN_PASSWORD ? { email: env.ADMIN_EMAIL, password: env.ADMIN_PASSWORD } : undefined,
    shutdownDrainMs: int(env.SHUTDOWN_DRAIN_MS, nodeEnv === 'production' ? 5000 : 0),
    cache: {
      enabled: bool(env.CACHE_ENABLED, true),
      ttlSeconds: int(env.CACHE_TTL_SECONDS, 300),
      maxBytes: int(env.CACHE_MAX_BYTES, 32 * 1024 * 1024),
      maxEntryBytes: int(env.CACHE_MAX_ENTRY_BYTES, 256 * 1024),
    },
    idempotency: { ttlSeconds: int(env.IDEMPOTENCY_TTL_SECONDS, 24 * 3600), leaseMs: int(env.IDEMPOTENCY_LEASE_MS, 60_000) },
    limits: { tasksPerUser: int(env.TASKS_PER_USER_MAX, 10000), webhooksPerUser: int(env.WEBHOOKS_PER_USER_MAX, 20) },
    metrics: { enabled: bool(env.METRICS_ENABLED, true), host: env.METRICS_HOST ?? '0.0.0.0', port: int(env.METRICS_PORT, 9464) },
    tracing: { endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: env.OTEL_SERVICE_NAME ?? 'task-api' },
    logstash: logstashOf(env.LOGSTASH_URL),
    cors: { origins: corsOrigins },
    events: {
      amqpUrls,
      exchange: env.AMQP_EXCHANGE ?? 'task-api.events',
      relayEnabled: bool(env.OUTBOX_RELAY_ENABLED, true),
      pollMs: int(env.OUTBOX_POLL_MS, 200),
      batchSize: int(env.OUTBOX_BATCH, 100),
      retentionHours: int(env.OUTBOX_RETENTION_HOURS, 24),
      deliveryLimit: int(env.EVENTS_DELIVERY_LIMIT, 5),
    },
    rateLimit: {
      enabled: bool(env.RATE_LIMIT_ENABLED, true),
      policies: {
        ...DEFAULT_POLICIES,
        ...policyOverrides,
        default: {
          points: int(env.RATE_LIMIT_POINTS, policyOverrides.default?.points ?? DEFAULT_POLICIES.default.points),
          duration: int(env.RATE_LIMIT_DURATION, policyOverrides.default?.duration ?? DEFAULT_POLICIES.default.duration),
          blockDuration: int(env.RATE_LIMIT_BLOCK_DURATION, policyOverrides.default?.blockDuration ?? DEFAULT_POLICIES.default.blockDuration),
        },
      },
    },
    notifications: {
      smtpUrl: env.SMTP_URL,
      mailFrom: env.MAIL_FROM ?? 'task-api <no-reply@localhost>',
      webhooks: {
        allowPrivateTargets: bool(env.WEBHOOK_ALLOW_PRIVATE_TARGETS, false),
        maxAttempts: int(env.WEBHOOK_MAX_ATTEMPTS, 8),
        timeoutMs: int(env.WEBHOOK_TIMEOUT_MS, 5000),
        backoffBaseMs: int(env.WEBHOOK_BACKOFF_BASE_MS, 10000),
        backoffMaxMs: int(env.WEBHOOK_BACKOFF_MAX_MS, 6 * 3600 * 1000),
      },
      deliveryRetentionDays: int(env.DELIVERY_RETENTION_DAYS, 30),
    },
  };
}
