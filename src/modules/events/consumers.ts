// The hook through which modules consume task events. Add one entry per consumer module; `serve`
// and `worker` call every entry with the process's event bus before it starts consuming:
//
//   import { registerNotifications } from '../notifications/...';
//   export const consumerModules: RegisterConsumers[] = [registerNotifications];
//
// where registerNotifications = (bus, { database, config, log }) => {
//   bus.subscribe('notifications', createNotificationsHandler(...));
// }
// Whatever a registration starts (timers, workers) it returns as a stop function, called on shutdown.
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../config.js';
import type { Database } from '../../infra/db/database.js';
import type { Metrics } from '../../observability/metrics.js';
import type { EventBus } from './bus.js';
import { registerNotifications } from '../notifications/register.js';

export interface ConsumerContext {
  database: Database;
  config: Config;
  log: FastifyBaseLogger;
  metrics: Metrics | undefined;
}

export type RegisterConsumers = (bus: EventBus, ctx: ConsumerContext) => void | (() => Promise<void>) | Promise<void | (() => Promise<void>)>;

export const consumerModules: RegisterConsumers[] = [registerNotifications];
