// Builds the HTTP application from already-opened infrastructure. Used by the server, the
// tests (through app.inject) and the OpenAPI generator alike.
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions, type RouteOptions } from 'fastify';
import type { Redis } from 'ioredis';
import { ConfigError, type Config } from './config.js';
import { authPlugin, type AccessTokenVerifier } from './http/auth.js';
import { RemoteAccessTokens, type RemoteJwks } from './http/remote-jwks.js';
import { answerClientError } from './http/client-error.js';
import { corsPlugin } from './http/cors.js';
import { healthRoutes, type HealthCheck, type HealthState } from './http/health.js';
import { idempotencyPlugin } from './http/idempotency.js';
import { jsonBodyPlugin } from './http/json-body.js';
import { methodsPlugin } from './http/methods.js';
import { metricsPlugin } from './http/metrics.js';
import { registerOpenApi } from './http/openapi.js';
import { problemPlugin, sendFrameworkProblem } from './http/problem.js';
import { requestLogPlugin } from './http/request-log.js';
import { rateLimitPlugin } from './http/rate-limit.js';
import { deadlinePlugin } from './http/deadline.js';
import { responseCachePlugin } from './http/response-cache.js';
import { securityHeadersPlugin } from './http/security-headers.js';
import { validatorCompiler } from './http/validation.js';
import type { Database } from './infra/db/database.js';
import type { TaskShards } from './infra/shards/set.js';
import type { ResponseCacheStore } from './infra/cache/types.js';
import { MemoryIdempotencyStore } from './infra/idempotency/memory.js';
import type { IdempotencyStore } from './infra/idempotency/types.js';
import { loggerOptions, requestIdFrom } from './observability/logging.js';
import type { RefreshTokenStore } from './infra/token-store/types.js';
import type { KeyRing } from './modules/auth/keys.js';
import { ALL_MODULES, buildModules, platformOf, type ModuleName, type Modules } from './modules/registry.js';
import type { Metrics } from './observability/metrics.js';
import { VERSION } from './version.js';

export interface AppDeps {
  config: Config;
  database: Database;
  /** The shards of the tasks data (openInfrastructure's); the one database when absent. */
  shards?: TaskShards | undefined;
  tokenStore: RefreshTokenStore;
  keys: KeyRing;
  /** The shared Redis connection, when REDIS_URL is configured (cache, rate limits). */
  redis?: Redis | undefined;
  /** Response cache store; undefined when caching is off. */
  cache?: ResponseCacheStore | undefined;
  /** Idempotency-Key store (openInfrastructure picks Redis or memory); in-process memory when absent. */
  idempotency?: IdempotencyStore;
  /** Extra readiness checks (Redis, ...). The database check is always there. */
  healthChecks?: HealthCheck[];
  health?: HealthState;
  logger?: FastifyServerOptions['logger'];
  /** Called for every route as it is added (tests use it to read the route table). */
  onRoute?: (route: RouteOptions) => void;
  /** Prometheus metrics; undefined when METRICS_ENABLED=false (no metrics hook at all). */
  metrics?: Metrics | undefined;
  /** Told after a task write committed its event to the outbox (wakes the relay; optional). */
  eventsWritten?: () => void;
  /** The feature modules whose routes this process serves (default: all of them). */
  modules?: ReadonlySet<ModuleName>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every feature module, built for this process (serve runs the selected ones' consumers). */
    modules: Modules;
    /** The auth service's keys as this process holds them, where tokens are checked against AUTH_JWKS_URL. */
    remoteJwks?: RemoteJwks;
  }
}

/**
 * Who checks access tokens: the auth module where it runs; elsewhere the auth service's JWKS
 * (AUTH_JWKS_URL, cached and refreshed, src/http/remote-jwks.ts), or, without it, the fixed
 * JWT_PRIVATE_KEY / JWT_PUBLIC_KEYS shared with the auth service (no rotation without a restart).
 */
function accessTokensFor(app: FastifyInstance, deps: AppDeps, modules: Modules): AccessTokenVerifier {
  const { config } = deps;
  if ((deps.modules ?? ALL_MODULES).has('auth')) return modules.apis.auth.tokens;
  const { jwksUrl, jwksCooldownMs } = config.authService;
  if (jwksUrl) {
    const remote = new RemoteAccessTokens({
      url: jwksUrl,
      cooldownMs: jwksCooldownMs,
      background: true,
      issuer: config.jwt.issuer,
      audience: config.jwt.audience,
      warn: (obj, msg) => app.log.warn(obj, msg),
    });
    remote.jwks.start();
    app.addHook('onClose', async () => remote.jwks.close());
    app.decorate('remoteJwks', remote.jwks);
    return remote;
  }
  if (deps.keys.verification.size > 0) return modules.apis.auth.tokens;
  throw new ConfigError([
    'AUTH_JWKS_URL: required when the auth module is not in this process (serve --modules without auth), e.g. http://auth-host/.well-known/jwks.json',
  ]);
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    logger: deps.logger ?? loggerOptions(config),
    // One line per request comes from the request-log plugin instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.http.bodyLimit,
    trustProxy: config.http.trustProxy,
    requestIdHeader: false,
    genReqId: (req) => requestIdFrom(req.headers['x-request-id'], randomUUID),
    // Slow clients: the headers, then the whole request, must arrive in time (else 408 and the
    // connection closes); a connection silent both ways mid-request is closed. The keep-alive
    // timeout (72 s by default) is longer than the load balancer's upstream keepalive, so it never
    // reuses a socket we closed. Node checks the first two every connectionsCheckingInterval.
    requestTimeout: config.http.timeouts.requestMs,
    connectionTimeout: config.http.timeouts.connectionMs,
    keepAliveTimeout: config.http.timeouts.keepAliveMs,
    http: {
      requestTimeout: config.http.timeouts.requestMs,
      headersTimeout: config.http.timeouts.headersMs,
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(config.http.timeouts.headersMs / 4))),
    },
    // A closing server serves what still reaches it on an open connection (drained connections
    // carry Connection: close, below): a 503 here would read, to the load balancer in front, as
    // a dependency outage, which it must not retry (deploy/nginx/edge-server.conf.inc).
    return503OnClosing: false,
    frameworkErrors: sendFrameworkProblem,
    clientErrorHandler: answerClientError,
  });
  const { onRoute } = deps;
  if (onRoute) app.addHook('onRoute', (route) => onRoute(route));
  app.setValidatorCompiler(validatorCompiler);
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });

  await app.register(requestLogPlugin);
  await app.register(deadlinePlugin, { ms: config.http.timeouts.answerMs });
  await app.register(problemPlugin);
  await app.register(securityHeadersPlugin, { production: config.env === 'production' });
  // CORS, then 405 and OPTIONS: both ahead of authentication and rate limiting (see methods.ts).
  await app.register(corsPlugin, { origins: config.cors.origins });
  await app.register(methodsPlugin);
  await app.register(jsonBodyPlugin);
  const modules = buildModules(platformOf({ ...deps, authRecorder: deps.metrics?.auth }, app.log));
  app.decorate('modules', modules);
  await app.register(authPlugin, { tokens: accessTokensFor(app, deps, modules), recorder: deps.metrics?.auth });
  await app.register(rateLimitPlugin, { config: config.rateLimit, redis: deps.redis });
  await app.register(idempotencyPlugin, { store: deps.idempotency ?? new MemoryIdempotencyStore(), ttlSeconds: config.idempotency.ttlSeconds, leaseMs: config.idempotency.leaseMs });
  await app.register(responseCachePlugin, { store: deps.cache, ttlSeconds: config.cache.ttlSeconds });
  if (deps.metrics) await app.register(metricsPlugin, { metrics: deps.metrics });
  await registerOpenApi(app, VERSION);

  const health = deps.health ?? { draining: false };
  // While draining, every answer closes its connection: the load balancer's kept-alive connections
  // to this instance end one by one, and by the time it stops listening none is left to meet a
  // refused or reset request (src/server.ts).
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (health.draining) void reply.header('connection', 'close');
    done(null, payload);
  });
  const checks: HealthCheck[] = [{ name: 'database', critical: true, check: () => deps.database.ping() }, ...(deps.healthChecks ?? [])];
  healthRoutes(app, { checks, state: health });
  modules.routes(app, deps.modules ?? ALL_MODULES);
  return app;
}
