// Builds the HTTP application from already-opened infrastructure. Used by the server, the
// tests (through app.inject) and the OpenAPI generator alike.
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions, type RouteOptions } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import { authPlugin } from './http/auth.js';
import { healthRoutes, type HealthCheck, type HealthState } from './http/health.js';
import { metricsPlugin } from './http/metrics.js';
import { registerOpenApi } from './http/openapi.js';
import { problemPlugin, sendFrameworkProblem } from './http/problem.js';
import { requestLogPlugin } from './http/request-log.js';
import { rateLimitPlugin } from './http/rate-limit.js';
import { responseCachePlugin } from './http/response-cache.js';
import { securityHeadersPlugin } from './http/security-headers.js';
import { validatorCompiler } from './http/validation.js';
import type { Database } from './infra/db/database.js';
import type { ResponseCacheStore } from './infra/cache/types.js';
import { loggerOptions, requestIdFrom } from './observability/logging.js';
import type { RefreshTokenStore } from './infra/token-store/types.js';
import type { KeyRing } from './modules/auth/keys.js';
import { authRoutes, jwksRoute } from './modules/auth/routes.js';
import { AuthService } from './modules/auth/service.js';
import { AccessTokens } from './modules/auth/tokens.js';
import { NotificationsRepository } from './modules/notifications/repository.js';
import { notificationsRoutes } from './modules/notifications/routes.js';
import { NotificationsService, WebhooksService } from './modules/notifications/service.js';
import { TasksRepository } from './modules/tasks/repository.js';
import { tasksRoutes } from './modules/tasks/routes.js';
import { TasksService } from './modules/tasks/service.js';
import { UsersRepository } from './modules/users/repository.js';
import { usersRoutes } from './modules/users/routes.js';
import { UsersService } from './modules/users/service.js';
import { ALL_MODULES, type ModuleName } from './modules/selection.js';
import type { Metrics } from './observability/metrics.js';
import { VERSION } from './version.js';

export interface AppDeps {
  config: Config;
  database: Database;
  tokenStore: RefreshTokenStore;
  keys: KeyRing;
  /** The shared Redis connection, when REDIS_URL is configured (cache, rate limits). */
  redis?: Redis | undefined;
  /** Response cache store; undefined when caching is off. */
  cache?: ResponseCacheStore | undefined;
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
    // Longer than the load balancer's upstream keepalive, so it never reuses a closed socket.
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
    frameworkErrors: sendFrameworkProblem,
  });
  // Bodies are JSON only: without this, a text/plain body is parsed as a string and answered with
  // a confusing 400 "must be object" instead of the 415 the routes document.
  app.removeContentTypeParser('text/plain');
  const { onRoute } = deps;
  if (onRoute) app.addHook('onRoute', (route) => onRoute(route));
  app.setValidatorCompiler(validatorCompiler);
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });

  await app.register(requestLogPlugin);
  await app.register(problemPlugin);
  await app.register(securityHeadersPlugin, { production: config.env === 'production' });
  const access = new AccessTokens(deps.keys, {
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    accessTtlSeconds: config.jwt.accessTtlSeconds,
  });
  await app.register(authPlugin, { tokens: access, recorder: deps.metrics?.auth });
  await app.register(rateLimitPlugin, { config: config.rateLimit, redis: deps.redis });
  await app.register(responseCachePlugin, { store: deps.cache, ttlSeconds: config.cache.ttlSeconds });
  if (deps.metrics) await app.register(metricsPlugin, { metrics: deps.metrics });
  await registerOpenApi(app, VERSION);

  const usersRepo = new UsersRepository(deps.database.db);
  const auth = new AuthService(usersRepo, deps.tokenStore, access, config.jwt.refreshTtlSeconds, app.log, deps.metrics?.auth);
  // After a write to a user's data, their cached responses are retired.
  const dataChanged = (userId: string) => deps.cache?.invalidateUser(userId) ?? Promise.resolve();
  const users = new UsersService(usersRepo, (userId) => auth.revokeAll(userId), dataChanged);
  const tasksChanged = (userId: string) => {
    deps.eventsWritten?.();
    return dataChanged(userId);
  };
  const tasks = new TasksService(new TasksRepository(deps.database.db), tasksChanged);
  const notificationsRepo = new NotificationsRepository(deps.database.db);
  const notifications = new NotificationsService(notificationsRepo);
  const webhooks = new WebhooksService(notificationsRepo, { allowPrivateTargets: config.notifications.webhooks.allowPrivateTargets });

  const health = deps.health ?? { draining: false };
  const checks: HealthCheck[] = [{ name: 'database', critical: true, check: () => deps.database.ping() }, ...(deps.healthChecks ?? [])];
  healthRoutes(app, { checks, state: health });
  const modules = deps.modules ?? ALL_MODULES;
  if (modules.has('auth')) {
    jwksRoute(app, { keys: deps.keys });
    authRoutes(app, { auth });
  }
  if (modules.has('users')) usersRoutes(app, { users });
  if (modules.has('tasks')) tasksRoutes(app, { tasks });
  if (modules.has('notifications')) notificationsRoutes(app, { notifications, webhooks });
  return app;
}
