// The notifications module's entry points:
// - createNotificationsConsumer(): the TaskEventHandler to register with the event bus;
// - notificationsRoutes (wired in app.ts): in-app notifications, preferences, webhooks;
// - startDeliveryWorker(): the loop that sends webhook deliveries and emails (serve runs it).
import type { Config } from '../../config.js';
import type { Database } from '../../infra/db/database.js';
import type { TaskEventHandler } from '../../shared/events.js';
import { UsersRepository } from '../users/repository.js';
import { CONSUMER, createNotificationsHandler } from './handler.js';
import { NotificationsRepository } from './repository.js';

export { CONSUMER as NOTIFICATIONS_CONSUMER, parseTaskEvent } from './handler.js';
export { PoisonMessageError, isPoisonMessage } from '../../shared/poison.js';
export { startDeliveryWorker, createDeliveryWorker, type DeliveryWorker } from './worker.js';

export interface NotificationsConsumer {
  /** The consumer's name (its processed_events key and, by convention, its queue's name). */
  name: typeof CONSUMER;
  handle: TaskEventHandler;
}

export function createNotificationsConsumer(deps: { database: Database; config: Config }): NotificationsConsumer {
  const users = new UsersRepository(deps.database.db);
  const handle = createNotificationsHandler({
    repo: new NotificationsRepository(deps.database.db),
    recipientOf: async (userId) => (await users.findById(userId))?.email,
    emailEnabled: deps.config.notifications.smtpUrl !== undefined,
  });
  return { name: CONSUMER, handle };
}
