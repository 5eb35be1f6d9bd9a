// The consumers: task events become notifications (handle), and account events keep the module's
// copy of the accounts (handleAccount), user.deleted deleting everything it holds of the account.
// Each task event takes effect once, however often it is delivered: its id goes into
// processed_events in the same transaction as its effects (in-app notification, webhook
// deliveries, email job). The account effects are idempotent by themselves.
import { isUserEvent, parseTaskEvent, parseUserEvent, type DomainEvent, type EventHandler } from '../../shared/events.js';
import { uuidv7 } from '../../shared/ids.js';
import { messageOf } from './messages.js';
import type { Config } from '../../config.js';
import type { Database } from '../../infra/db/database.js';
import { NotificationsRepository } from './repository.js';

export const CONSUMER = 'notifications';
/** The account events' consumer (its own queue: task events and account events flow apart). */
export const ACCOUNTS_CONSUMER = 'notifications-accounts';

/** An email is due to an account whose address has not arrived yet (user.created): retried. */
export class RecipientUnknownError extends Error {
  constructor(userId: string) {
    super(`no address yet for account ${userId} (its user.created has not arrived)`);
  }
}

export interface HandlerDeps {
  repo: NotificationsRepository;
  /** Emails are only queued when SMTP is configured. */
  emailEnabled: boolean;
}

/** Builds the notifications consumer's handler of task events. */
export function createNotificationsHandler(deps: HandlerDeps): EventHandler {
  const { repo } = deps;
  return async function handle(message: DomainEvent): Promise<void> {
    if (isUserEvent(message)) return; // not a task event (a queue bound to more than task.*)
    const event = parseTaskEvent(message);
    await repo.transaction(async (tx) => {
      if (!(await tx.markProcessed(CONSUMER, event.id))) return; // already applied: a redelivery
      // Held until the end: the account's deletion waits for these inserts, then deletes them.
      const recipient = await tx.holdRecipient(event.userId);
      if (recipient.closed) return; // the account is gone: nothing to notify
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
        if (recipient.email === null) throw new RecipientUnknownError(event.userId); // rolls back; delivered again later
        await tx.insertEmail({ id: uuidv7(), userId: event.userId, eventId: event.id, recipient: recipient.email, subject: title, body });
      }
    });
  };
}

/** Builds the handler of account events: the copy of the accounts, and deletion with the account. */
export function createAccountsHandler(repo: NotificationsRepository): EventHandler {
  return async function handleAccount(message: DomainEvent): Promise<void> {
    if (!isUserEvent(message)) return; // not an account event (a queue bound to more than user.*)
    const event = parseUserEvent(message);
    const u = event.data.user;
    if (event.type === 'user.deleted') await repo.transaction((tx) => tx.forgetAccount(u.id));
    else await repo.keepRecipient(u.id, u.email, new Date(u.updatedAt));
  };
}

export interface NotificationsConsumer {
  /** The consumer's name (its processed_events key and, by convention, its queue's name). */
  name: typeof CONSUMER;
  handle: EventHandler;
  /** The account events' consumer. */
  accounts: { name: typeof ACCOUNTS_CONSUMER; handle: EventHandler };
}

/** The consumers to subscribe to the event bus. */
export function createNotificationsConsumer(deps: { database: Database; config: Config }): NotificationsConsumer {
  const repo = new NotificationsRepository(deps.database.db);
  const handle = createNotificationsHandler({ repo, emailEnabled: deps.config.notifications.smtpUrl !== undefined });
  return { name: CONSUMER, handle, accounts: { name: ACCOUNTS_CONSUMER, handle: createAccountsHandler(repo) } };
}
