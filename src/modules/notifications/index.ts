// The notifications module: consumes task events (idempotently, via processed_events) into in-app
// notifications, webhook deliveries and emails; serves notifications, preferences and webhooks;
// runs the delivery worker beside its consumer.
import { defineModule } from '../module.js';
import { createNotificationsConsumer } from './handler.js';
import { NotificationsRepository } from './repository.js';
import { notificationsRoutes } from './routes.js';
import { NotificationsService, WebhooksService } from './service.js';
import { startDeliveryWorker } from './worker.js';

export const notificationsModule = defineModule<'notifications', 'database' | 'config' | 'log', 'users'>({
  name: 'notifications',
  build({ database, config, log }, apis) {
    const repo = new NotificationsRepository(database.db);
    const accountExists = (userId: string) => apis.users.accountExists(userId);
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
        const consumer = createNotificationsConsumer({ database, config, recipientOf: (userId) => apis.users.emailOf(userId) });
        bus.subscribe(consumer.name, consumer.handle);
        const worker = startDeliveryWorker({ database, config, log });
        return () => worker.stop();
      },
    };
  },
});
