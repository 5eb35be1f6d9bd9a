// `task-api worker`: the outbox relay and the event consumers, without the HTTP API. Metrics are
// served on METRICS_PORT as in `serve`.
import type { Config } from './config.js';
import { openInfrastructure } from './infrastructure.js';
import { startEvents, type EventsRuntime } from './events/runtime.js';
import { ALL_MODULES, buildModules, platformOf } from './modules/registry.js';
import { startMetricsServer } from './observability/metrics-server.js';

export interface RunningWorker {
  events: EventsRuntime;
  log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** Stops claiming, finishes the batch in flight, closes the channel and the pools. */
  shutdown(): Promise<void>;
}

export async function work(config: Config): Promise<RunningWorker> {
  const { default: pino } = await import('pino');
  const { loggerOptions } = await import('./observability/logging.js');
  const log = pino(loggerOptions(config)).child({ role: 'worker' });
  const infra = await openInfrastructure(config, log);
  // Every module's consumers, built as `serve` builds them.
  const modules = buildModules(platformOf({ config, ...infra }, log));
  const events = await startEvents({
    config,
    database: infra.database,
    outboxes: infra.shards.all.slice(1).map((s) => s.database),
    log,
    metrics: infra.metrics,
    consumers: modules.consumers(ALL_MODULES),
  });
  const metricsServer = infra.metrics
    ? await startMetricsServer(infra.metrics.registry, { ...config.metrics, onError: (err) => log.error({ err }, 'metrics collection failed') })
    : undefined;
  if (metricsServer) log.info({ url: metricsServer.url }, 'metrics listening');
  let stopping: Promise<void> | undefined;
  return {
    events,
    log,
    shutdown: () =>
      (stopping ??= (async () => {
        await events.stop();
        await metricsServer?.close();
        await infra.close();
        log.info({}, 'stopped');
      })()),
  };
}
