// The notifications module: consumes task events (idempotently, via processed_events) into in-app
// notifications, webhook deliveries and emails, and account events into its copy of the accounts
// (deleting what it holds of an account with it); serves notifications, preferences and webhooks;
// runs the delivery worker beside its consumer.
import { defineModule } from '../module.js';
import { createNotificationsConsumer } from './handler.js';
import { NotificationsRepository } from './repository.js';
import { notificationsRoutes } from './routes.js';
import { NotificationsService, WebhooksService } from './service.js';
import { startDeliveryWorker } from './worker.js';

export const notificationsModule = defineModule<'notifications', 'database' | 'config' | 'log'>({
  name: 'notifications',
  build({ database, config, log }) {
    const repo = new NotificationsRepository(database.db);
    // What it knows of accounts comes from the account events (handler.ts handleAccount).
    const accountExists = async (userId: string) => !(await repo.accountClosed(userId));
    const notifications = new NotificationsService(repo, accountExists);
    const webhooks = new WebhooksService(
      repo,
      {
        allowPrivateTargets: config.notifications.webhooks.allowPrivateTargets,
        maxPerUser: config.limits.webhooksPerUser,
      },
      accountExists,
    );
    return {
      api: {},
      routes: (app) => notificationsRoutes(app, { notifications, webhooks }),
      consumers(bus) {
        const consumer = createNotificationsConsumer({ database, config });
        bus.subscribe(consumer.name, consumer.handle, { types: ['task.*'] });
        bus.subscribe(consumer.accounts.name, consumer.accounts.handle, { types: ['user.*'] });
        const worker = startDeliveryWorker({ database, config, log });
        return () => worker.stop();
      },
    };
  },
});
