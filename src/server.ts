// `task-api serve`: the HTTP server with graceful shutdown.
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { ConfigError, type Config } from './config.js';
import type { HealthState } from './http/health.js';
import { openInfrastructure } from './infrastructure.js';
import { loggerOptions } from './observability/logging.js';
import { startMetricsServer } from './observability/metrics-server.js';
import { ensureAdmin } from './operations/admin.js';
import { startEvents } from './events/runtime.js';
import { ALL_MODULES, type ModuleName } from './modules/registry.js';

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  /** GET /metrics on METRICS_HOST:METRICS_PORT; undefined when METRICS_ENABLED=false. */
  metricsUrl: string | undefined;
  /** Drains and stops: readiness turns 503, in-flight requests finish, pools close. */
  shutdown(): Promise<void>;
}

export interface ServeOptions {
  /** The feature modules to run (`--modules`); all by default. */
  modules?: ReadonlySet<ModuleName>;
}

export async function serve(config: Config, opts: ServeOptions = {}): Promise<RunningServer> {
  const modules = opts.modules ?? ALL_MODULES;
  if (!modules.has('auth') && !config.authService.jwksUrl && !config.jwt.privateKeyPem) {
    throw new ConfigError(['AUTH_JWKS_URL: required when the auth module is not in this process (serve --modules without auth), e.g. http://auth-host/.well-known/jwks.json']);
  }
  const health: HealthState = { draining: false };
  const { default: pino } = await import('pino');
  // The app's logger exists only once the infrastructure is open: until then, the same options
  // (redaction and error serializers included), on stdout alone.
  const bootLog = pino({ ...loggerOptions(config), transport: undefined });
  const infra = await openInfrastructure(config, bootLog, { modules });
  // Task writes wake the relay once it runs (it polls anyway).
  const relayWake = { nudge: (): void => undefined };
  const app = await buildApp({ config, ...infra, health, modules, eventsWritten: () => relayWake.nudge() });
  if (config.admin) await ensureAdmin(infra.database, config.admin, app.log);
  // The consumers run where their modules do (notifications: task and account events; tasks:
  // account events). With RabbitMQ the relay publishes where events are written: the tasks
  // module's task events, the account events of users and auth (sign-up). The in-process bus
  // delivers only to consumers in its own process, so there the relay runs only where every
  // consumer is (the monolith); a partial process leaves its events in the outbox for one.
  // OUTBOX_RELAY_ENABLED=false turns it off (a `task-api worker` relays instead).
  const writesEvents = ['tasks', 'users', 'auth'].some((m) => modules.has(m as ModuleName));
  const consumesAll = modules.has('tasks') && modules.has('notifications');
  const broker = config.events.amqpUrls.length > 0;
  const relay = config.events.relayEnabled && (broker ? writesEvents : consumesAll);
  if (writesEvents && !relay && !broker && config.events.relayEnabled) {
    app.log.info('events stay in the outbox until a process with every consumer (the monolith), or task-api worker, relays them');
  }
  const events = await startEvents({
    config,
    database: infra.database,
    log: app.log,
    metrics: infra.metrics,
    relay,
    // Each shard of the tasks data has its own outbox (the tasks module writes there).
    outboxes: modules.has('tasks') ? infra.shards.all.slice(1).map((s) => s.database) : [],
    consumers: app.modules.consumers(modules),
  });
  relayWake.nudge = () => events.nudge();
  app.log.info({ modules: [...modules] }, 'modules');
  const url = await app.listen({ host: config.http.host, port: config.http.port });
  const metricsServer = infra.metrics
    ? await startMetricsServer(infra.metrics.registry, { ...config.metrics, onError: (err) => app.log.error({ err }, 'metrics collection failed') })
    : undefined;
  if (metricsServer) app.log.info({ url: metricsServer.url }, 'metrics listening');

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      health.draining = true;
      app.log.info({ drainMs: config.shutdownDrainMs }, 'draining');
      // Idle kept-alive connections close now, busy ones after their answer (Connection: close,
      // src/app.ts). Load balancers that probe see readiness fail and stop sending new requests
      // during this delay; those that do not (NGINX open source) open new connections, answered
      // and closed the same way, until the listener closes and they meet a refused connection,
      // which they retry on another instance.
      app.server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, config.shutdownDrainMs));
      await app.close(); // waits for in-flight requests
      await events.stop(); // stops claiming, finishes the batch in flight, closes the channel
      await metricsServer?.close();
      await infra.close();
      app.log.info('stopped');
    })());
  return { app, url, metricsUrl: metricsServer?.url, shutdown };
}
