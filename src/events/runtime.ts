// Wires the event side of a process: the bus the configuration asks for, the consumers, and the
// outbox relay. Used by `task-api serve` (with the HTTP API) and `task-api worker` (without).
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import type { Database } from '../infra/db/database.js';
import type { Metrics } from '../observability/metrics.js';
import type { ConsumeRecorder } from '../observability/recorders.js';
import { InProcessEventBus, type EventBus } from './bus.js';
import type { RegisterConsumers } from './consumers.js';
import { OutboxRepository } from './outbox.js';
import { RabbitMqEventBus } from './rabbitmq.js';
import { OutboxRelay } from './relay.js';
import { EventRetries } from './retries.js';

export function createEventBus(config: Config, database: Database, log: FastifyBaseLogger, recorder?: ConsumeRecorder): EventBus {
  const { amqpUrls, exchange, deliveryLimit } = config.events;
  return amqpUrls.length > 0
    ? new RabbitMqEventBus({ url: amqpUrls, exchange, log, recorder, deliveryLimit })
    : new InProcessEventBus({ retries: new EventRetries(database.db), log, recorder, deliveryLimit });
}

export interface EventsRuntimeOptions {
  config: Config;
  database: Database;
  log: FastifyBaseLogger;
  metrics?: Metrics | undefined;
  /** Defaults to the process's bus from the configuration (its consumers counted in `metrics`). */
  bus?: EventBus;
  /** The consumers this process runs (the entry point's modules'); none by default. */
  consumers?: RegisterConsumers[];
  /** Run the relay here; defaults to OUTBOX_RELAY_ENABLED. */
  relay?: boolean;
  /**
   * Other databases whose outbox the relay publishes too: the shards of the tasks data besides
   * the main one (each shard's events are written in its own transactions, to its own outbox).
   */
  outboxes?: readonly Database[];
}

export interface EventsRuntime {
  bus: EventBus;
  /** The main database's relay (undefined when the relay does not run here). */
  relay: OutboxRelay | undefined;
  /** Every relay: the main database's, then one per other outbox. */
  relays: OutboxRelay[];
  /** Wakes the relay after a local write (no-op without a relay). */
  nudge(): void;
  /** Stops claiming, finishes the batch in flight, stops the consumers, closes the bus. */
  stop(): Promise<void>;
}

export async function startEvents(opts: EventsRuntimeOptions): Promise<EventsRuntime> {
  const { config, database, log } = opts;
  const bus = opts.bus ?? createEventBus(config, database, log, opts.metrics?.consumers);
  const outboxes = [database, ...(opts.outboxes ?? [])].map((db) => ({ database: db, outbox: new OutboxRepository(db.db) }));
  const stops: (() => Promise<void>)[] = [];
  for (const register of opts.consumers ?? []) {
    const stop = await register(bus);
    if (stop) stops.push(stop);
  }
  await bus.start();
  // The gauges count every outbox this process relays (the main one's alone without shards).
  opts.metrics?.outboxGauges(async () => {
    const all = await Promise.all(outboxes.map((o) => o.outbox.stats()));
    return all.reduce((a, b) => ({ pending: a.pending + b.pending, oldestPendingAgeSeconds: Math.max(a.oldestPendingAgeSeconds, b.oldestPendingAgeSeconds) }));
  });
  const relayHere = opts.relay ?? config.events.relayEnabled;
  const relays = !relayHere
    ? []
    : outboxes.map(
        ({ database: db, outbox }) =>
          new OutboxRelay({
          outbox,
          publish: (events) => bus.publish(events),
          log,
          recorder: opts.metrics?.events,
          pollMs: config.events.pollMs,
          batchSize: config.events.batchSize,
          retentionHours: config.events.retentionHours,
          // PGlite is one connection: a claiming transaction would make handlers that write wait on it.
          locking: db.kind === 'postgres',
        }),
      );
  for (const r of relays) r.start();
  log.info({ bus: bus.kind, exchange: bus.kind === 'rabbitmq' ? config.events.exchange : undefined, relay: relays.length > 0, outboxes: outboxes.length }, 'events started');
  return {
    bus,
    relay: relays[0],
    relays,
    nudge: () => {
      for (const r of relays) r.nudge();
    },
    async stop() {
      await Promise.all(relays.map((r) => r.stop()));
      for (const stop of stops) await stop().catch((err: unknown) => log.warn({ err }, 'consumer stop failed'));
      await bus.close();
    },
  };
}
