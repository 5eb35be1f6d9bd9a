// The consumer entry point: handle(event) is a TaskEventHandler (src/shared/events.ts). Each event
// takes effect once, however often it is delivered: its id goes into processed_events in the same
// transaction as its effects (in-app notification, webhook deliveries, email job).
import { parseTaskEvent, type TaskEvent, type TaskEventHandler } from '../../shared/events.js';
import { uuidv7 } from '../../shared/ids.js';
import { messageOf } from './messages.js';
import type { Config } from '../../config.js';
import type { Database } from '../../infra/db/database.js';
import { NotificationsRepository } from './repository.js';

export const CONSUMER = 'notifications';

export interface HandlerDeps {
  repo: NotificationsRepository;
  /** The user's email address, or undefined when the account no longer exists. */
  recipientOf: (userId: string) => Promise<string | undefined>;
  /** Emails are only queued when SMTP is configured. */
  emailEnabled: boolean;
}

/** Builds the notifications consumer's TaskEventHandler. */
export function createNotificationsHandler(deps: HandlerDeps): TaskEventHandler {
  const { repo } = deps;
  return async function handle(message: TaskEvent): Promise<void> {
    const event = parseTaskEvent(message);
    // Read before the transaction (another module's data); an account deleted meanwhile makes
    // the inserts fail on their foreign key, and the redelivery then finds no account.
    const recipient = await deps.recipientOf(event.userId);
    await repo.transaction(async (tx) => {
      if (!(await tx.markProcessed(CONSUMER, event.id))) return; // already applied: a redelivery
      if (recipient === undefined) return; // the account is gone: nothing to notify
      const prefs = await tx.preferences(event.userId);
      const { title, body } = messageOf(event);
      if (prefs.inApp) {
        await tx.insertNotification({
          userId: event.userId,
          id: uuidv7(),
          eventId: event.id,
          taskId: event.taskId,
          type: event.type,
          title,
          body,
          createdAt: new Date(),
          readAt: null,
        });
      }
      if (prefs.webhooks) {
        const hooks = await tx.subscribedWebhooks(event.userId, event.type);
        const now = new Date();
        await tx.insertDeliveries(
          hooks.map((h) => ({ id: uuidv7(), webhookId: h.id, eventId: event.id, attempt: 1, payload: event, nextAttemptAt: now })),
        );
      }
      if (prefs.email && deps.emailEnabled) {
        await tx.insertEmail({ id: uuidv7(), userId: event.userId, eventId: event.id, recipient, subject: title, body });
      }
    });
  };
}

export interface NotificationsConsumer {
  /** The consumer's name (its processed_events key and, by convention, its queue's name). */
  name: typeof CONSUMER;
  handle: TaskEventHandler;
}

/** The consumer to subscribe to the event bus. */
export function createNotificationsConsumer(deps: {
  database: Database;
  config: Config;
  recipientOf: HandlerDeps['recipientOf'];
}): NotificationsConsumer {
  const handle = createNotificationsHandler({
    repo: new NotificationsRepository(deps.database.db),
    recipientOf: deps.recipientOf,
    emailEnabled: deps.config.notifications.smtpUrl !== undefined,
  });
  return { name: CONSUMER, handle };
}
