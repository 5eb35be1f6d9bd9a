// The only code that reads or writes the notification tables: processed_events, notifications,
// notification_preferences, webhooks, webhook_deliveries, email_deliveries and
// notification_recipients (the module's copy of the accounts).
import { and, asc, desc, eq, inArray, isNull, lt, lte, or, sql } from 'drizzle-orm';
import type { Db } from '../../infra/db/database.js';
import {
  emailDeliveries,
  notificationPreferences,
  notificationRecipients,
  notifications,
  processedEvents,
  webhookDeliveries,
  webhooks,
  type EmailDeliveryRow,
  type NotificationRow,
  type WebhookDeliveryRow,
  type WebhookRow,
} from './tables.js';

export type Notification = Omit<NotificationRow, 'userId'>;
export type Webhook = Omit<WebhookRow, 'secret'>;
export type WebhookDelivery = Omit<WebhookDeliveryRow, 'payload'>;
/** What the module knows of an account: deleted (closed), or open with its address if heard of. */
export type Recipient = { closed: true } | { closed: false; email: string | null };

/** The account was deleted: the caller's write is refused (401 account-gone). */
export const ACCOUNT_CLOSED = 'account-closed' as const;

export interface Preferences {
  inApp: boolean;
  email: boolean;
  webhooks: boolean;
}
export const DEFAULT_PREFERENCES: Preferences = { inApp: true, email: false, webhooks: true };

const notificationColumns = {
  id: notifications.id,
  eventId: notifications.eventId,
  taskId: notifications.taskId,
  type: notifications.type,
  title: notifications.title,
  body: notifications.body,
  createdAt: notifications.createdAt,
  readAt: notifications.readAt,
};
const webhookColumns = {
  id: webhooks.id,
  userId: webhooks.userId,
  url: webhooks.url,
  events: webhooks.events,
  active: webhooks.active,
  createdAt: webhooks.createdAt,
  updatedAt: webhooks.updatedAt,
};
const deliveryColumns = {
  id: webhookDeliveries.id,
  webhookId: webhookDeliveries.webhookId,
  eventId: webhookDeliveries.eventId,
  attempt: webhookDeliveries.attempt,
  status: webhookDeliveries.status,
  responseStatus: webhookDeliveries.responseStatus,
  error: webhookDeliveries.error,
  nextAttemptAt: webhookDeliveries.nextAttemptAt,
  createdAt: webhookDeliveries.createdAt,
  deliveredAt: webhookDeliveries.deliveredAt,
};

export interface NewDelivery {
  id: string;
  webhookId: string;
  eventId: string;
  attempt: number;
  payload: unknown;
  nextAttemptAt: Date;
}

/** A claimed delivery with what the worker needs to send it. */
export interface ClaimedDelivery extends WebhookDeliveryRow {
  url: string;
  secret: string;
  active: boolean;
}

export class NotificationsRepository {
  constructor(private readonly db: Db) {}

  // ---- the copy of the accounts

  /**
   * Inside a transaction: holds the account's row (FOR SHARE, creating it first if the account
   * was not heard of yet) until the transaction ends, so that the deletion of the account
   * (forget, which takes the row FOR UPDATE) runs wholly before or after this transaction's
   * writes: a write of a deleted account fails here, or lands first and is deleted with the rest.
   */
  async holdRecipient(userId: string): Promise<Recipient> {
    await this.db.insert(notificationRecipients).values({ userId }).onConflictDoNothing();
    const [row] = await this.db
      .select({ email: notificationRecipients.email, deletedAt: notificationRecipients.deletedAt })
      .from(notificationRecipients)
      .where(eq(notificationRecipients.userId, userId))
      .for('share');
    return row!.deletedAt !== null ? { closed: true } : { closed: false, email: row!.email };
  }

  /** Whether the account's deletion reached the module (user.deleted). */
  async accountClosed(userId: string): Promise<boolean> {
    const [row] = await this.db
      .select({ deletedAt: notificationRecipients.deletedAt })
      .from(notificationRecipients)
      .where(eq(notificationRecipients.userId, userId));
    return row !== undefined && row.deletedAt !== null;
  }

  /** user.created / user.updated: the address, unless the copy is newer or the account closed. */
  async keepRecipient(userId: string, email: string, updatedAt: Date): Promise<void> {
    await this.db
      .insert(notificationRecipients)
      .values({ userId, email, updatedAt })
      .onConflictDoUpdate({
        target: notificationRecipients.userId,
        set: { email, updatedAt },
        setWhere: and(
          isNull(notificationRecipients.deletedAt),
          or(isNull(notificationRecipients.updatedAt), lte(notificationRecipients.updatedAt, updatedAt)),
        ),
      });
  }

  /**
   * user.deleted: closes the account's row (taking it FOR UPDATE: see holdRecipient), then
   * deletes everything the module holds of the account. Call inside a transaction.
   */
  async forgetAccount(userId: string): Promise<void> {
    await this.db
      .insert(notificationRecipients)
      .values({ userId, email: null, deletedAt: new Date() })
      .onConflictDoUpdate({ target: notificationRecipients.userId, set: { email: null, deletedAt: sql`coalesce(${notificationRecipients.deletedAt}, now())` } });
    await this.db.delete(notifications).where(eq(notifications.userId, userId));
    await this.db.delete(notificationPreferences).where(eq(notificationPreferences.userId, userId));
    // Their deliveries go with the webhooks (ON DELETE CASCADE within the module).
    await this.db.delete(webhooks).where(eq(webhooks.userId, userId));
    await this.db.delete(emailDeliveries).where(eq(emailDeliveries.userId, userId));
  }

  /** Runs fn in one transaction with a repository bound to it. */
  transaction<T>(fn: (repo: NotificationsRepository) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(new NotificationsRepository(tx)));
  }

  /** True when this call recorded the event; false when the consumer had already processed it. */
  async markProcessed(consumer: string, eventId: string): Promise<boolean> {
    const rows = await this.db
      .insert(processedEvents)
      .values({ consumer, eventId })
      .onConflictDoNothing()
      .returning({ eventId: processedEvents.eventId });
    return rows.length > 0;
  }

  /** The user's preferences, the defaults when they never changed any. */
  async preferences(userId: string): Promise<Preferences> {
    return (await this.storedPreferences(userId)) ?? DEFAULT_PREFERENCES;
  }

  /** The preferences the user saved; undefined when they never changed any. */
  async storedPreferences(userId: string): Promise<Preferences | undefined> {
    const [row] = await this.db
      .select({ inApp: notificationPreferences.inApp, email: notificationPreferences.email, webhooks: notificationPreferences.webhooks })
      .from(notificationPreferences)
      .where(eq(notificationPreferences.userId, userId));
    return row;
  }

  async savePreferences(userId: string, changes: Partial<Preferences>): Promise<Preferences | typeof ACCOUNT_CLOSED> {
    return this.db.transaction(async (tx) => {
      if ((await new NotificationsRepository(tx).holdRecipient(userId)).closed) return ACCOUNT_CLOSED;
      const [row] = await tx
        .insert(notificationPreferences)
        .values({ ...DEFAULT_PREFERENCES, ...changes, userId, updatedAt: new Date() })
        .onConflictDoUpdate({ target: notificationPreferences.userId, set: { ...changes, updatedAt: new Date() } })
        .returning({ inApp: notificationPreferences.inApp, email: notificationPreferences.email, webhooks: notificationPreferences.webhooks });
      return row!;
    });
  }

  // ---- in-app notifications

  async insertNotification(n: NotificationRow): Promise<void> {
    await this.db.insert(notifications).values(n).onConflictDoNothing();
  }

  /** Newest first; afterId is the last id of the previous page (ids are UUIDv7, time-ordered). */
  async listNotifications(userId: string, unreadOnly: boolean, limit: number, afterId?: string): Promise<Notification[]> {
    return this.db
      .select(notificationColumns)
      .from(notifications)
      .where(
        and(
          eq(notifications.userId, userId),
          unreadOnly ? isNull(notifications.readAt) : undefined,
          afterId ? lt(notifications.id, afterId) : undefined,
        ),
      )
      .orderBy(desc(notifications.id))
      .limit(limit);
  }

  /** Marks one notification read (keeping the first read time); undefined when not the user's. */
  async markRead(userId: string, id: string): Promise<Notification | undefined> {
    const [row] = await this.db
      .update(notifications)
      .set({ readAt: sql`coalesce(${notifications.readAt}, now())` })
      .where(and(eq(notifications.userId, userId), eq(notifications.id, id)))
      .returning(notificationColumns);
    return row;
  }

  /** Marks the user's unread notifications read; returns how many. */
  async markAllRead(userId: string): Promise<number> {
    const rows = await this.db
      .update(notifications)
      .set({ readAt: new Date() })
      .where(and(eq(notifications.userId, userId), isNull(notifications.readAt)))
      .returning({ id: notifications.id });
    return rows.length;
  }

  // ---- webhooks

  async insertWebhook(w: WebhookRow): Promise<Webhook> {
    const [row] = await this.db.insert(webhooks).values(w).returning(webhookColumns);
    return row!;
  }

  /**
   * Inserts the webhook unless its owner already has `max`: the count and the insert run in one
   * transaction under a per-user advisory lock, so concurrent creates cannot pass the cap.
   * A second webhook with the same url throws the unique violation of webhooks_user_url_key.
   */
  async insertWebhookCapped(w: WebhookRow, max: number): Promise<Webhook | 'limit-reached' | typeof ACCOUNT_CLOSED> {
    return this.db.transaction(async (tx) => {
      if ((await new NotificationsRepository(tx).holdRecipient(w.userId)).closed) return ACCOUNT_CLOSED;
      await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`webhooks:${w.userId}`}, 0))`);
      const [held] = await tx.select({ n: sql<number>`count(*)::int` }).from(webhooks).where(eq(webhooks.userId, w.userId));
      if ((held?.n ?? 0) >= max) return 'limit-reached';
      const [row] = await tx.insert(webhooks).values(w).returning(webhookColumns);
      return row!;
    });
  }

  async getWebhook(userId: string, id: string): Promise<Webhook | undefined> {
    const [row] = await this.db
      .select(webhookColumns)
      .from(webhooks)
      .where(and(eq(webhooks.userId, userId), eq(webhooks.id, id)));
    return row;
  }

  async listWebhooks(userId: string, limit: number, afterId?: string): Promise<Webhook[]> {
    return this.db
      .select(webhookColumns)
      .from(webhooks)
      .where(and(eq(webhooks.userId, userId), afterId ? lt(webhooks.id, afterId) : undefined))
      .orderBy(desc(webhooks.id))
      .limit(limit);
  }

  async updateWebhook(
    userId: string,
    id: string,
    changes: Partial<Pick<WebhookRow, 'url' | 'events' | 'active' | 'secret'>>,
  ): Promise<Webhook | undefined> {
    const [row] = await this.db
      .update(webhooks)
      .set({ ...changes, updatedAt: new Date() })
      .where(and(eq(webhooks.userId, userId), eq(webhooks.id, id)))
      .returning(webhookColumns);
    return row;
  }

  async deleteWebhook(userId: string, id: string): Promise<boolean> {
    const rows = await this.db
      .delete(webhooks)
      .where(and(eq(webhooks.userId, userId), eq(webhooks.id, id)))
      .returning({ id: webhooks.id });
    return rows.length > 0;
  }

  /** The user's active webhooks subscribed to an event type. */
  async subscribedWebhooks(userId: string, type: string): Promise<{ id: string }[]> {
    return this.db
      .select({ id: webhooks.id })
      .from(webhooks)
      .where(and(eq(webhooks.userId, userId), eq(webhooks.active, true), sql`${type} = any(${webhooks.events})`));
  }

  // ---- webhook deliveries

  async insertDeliveries(rows: NewDelivery[]): Promise<WebhookDelivery[]> {
    if (rows.length === 0) return [];
    const now = new Date();
    return this.db
      .insert(webhookDeliveries)
      .values(rows.map((r) => ({ ...r, status: 'pending' as const, createdAt: now })))
      .returning(deliveryColumns);
  }

  async listDeliveries(webhookId: string, limit: number, afterId?: string): Promise<WebhookDelivery[]> {
    return this.db
      .select(deliveryColumns)
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.webhookId, webhookId), afterId ? lt(webhookDeliveries.id, afterId) : undefined))
      .orderBy(desc(webhookDeliveries.id))
      .limit(limit);
  }

  async getDelivery(webhookId: string, id: string): Promise<WebhookDeliveryRow | undefined> {
    const [row] = await this.db
      .select()
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.id, id)));
    return row;
  }

  async maxAttempt(webhookId: string, eventId: string): Promise<number> {
    const [row] = await this.db
      .select({ n: sql<number>`coalesce(max(${webhookDeliveries.attempt}), 0)::int` })
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.eventId, eventId)));
    return row?.n ?? 0;
  }

  /**
   * Claims up to `limit` due pending deliveries: locked with SKIP LOCKED so that concurrent
   * workers take different rows, and leased (next_attempt_at moved to leaseUntil) so that no
   * other worker takes them while they are being sent. A worker that dies leaves the lease to
   * expire, and the attempt is made again.
   */
  async claimDeliveries(limit: number, leaseUntil: Date): Promise<ClaimedDelivery[]> {
    return this.db.transaction(async (tx) => {
      const due = await tx
        .select({ id: webhookDeliveries.id })
        .from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.status, 'pending'), lte(webhookDeliveries.nextAttemptAt, sql`now()`)))
        .orderBy(asc(webhookDeliveries.nextAttemptAt))
        .limit(limit)
        .for('update', { skipLocked: true });
      if (due.length === 0) return [];
      const ids = due.map((d) => d.id);
      await tx.update(webhookDeliveries).set({ nextAttemptAt: leaseUntil }).where(inArray(webhookDeliveries.id, ids));
      const rows = await tx
        .select({ d: webhookDeliveries, url: webhooks.url, secret: webhooks.secret, active: webhooks.active })
        .from(webhookDeliveries)
        .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
        .where(inArray(webhookDeliveries.id, ids));
      return rows.map((r) => ({ ...r.d, url: r.url, secret: r.secret, active: r.active }));
    });
  }

  async finishDelivery(
    id: string,
    outcome: { status: 'succeeded' | 'failed'; responseStatus: number | null; error: string | null },
  ): Promise<void> {
    await this.db
      .update(webhookDeliveries)
      .set({ ...outcome, deliveredAt: outcome.status === 'succeeded' ? new Date() : null })
      .where(eq(webhookDeliveries.id, id));
  }

  // ---- email

  async insertEmail(e: Pick<EmailDeliveryRow, 'id' | 'userId' | 'eventId' | 'recipient' | 'subject' | 'body'>): Promise<void> {
    const now = new Date();
    await this.db
      .insert(emailDeliveries)
      .values({ ...e, status: 'pending', attempts: 0, nextAttemptAt: now, createdAt: now })
      .onConflictDoNothing();
  }

  /** Claims due emails like claimDeliveries, counting the attempt. */
  async claimEmails(limit: number, leaseUntil: Date): Promise<EmailDeliveryRow[]> {
    return this.db.transaction(async (tx) => {
      const due = await tx
        .select({ id: emailDeliveries.id })
        .from(emailDeliveries)
        .where(and(eq(emailDeliveries.status, 'pending'), lte(emailDeliveries.nextAttemptAt, sql`now()`)))
        .orderBy(asc(emailDeliveries.nextAttemptAt))
        .limit(limit)
        .for('update', { skipLocked: true });
      if (due.length === 0) return [];
      return tx
        .update(emailDeliveries)
        .set({ nextAttemptAt: leaseUntil, attempts: sql`${emailDeliveries.attempts} + 1` })
        .where(inArray(emailDeliveries.id, due.map((d) => d.id)))
        .returning();
    });
  }

  async finishEmail(id: string, outcome: { status: 'pending' | 'succeeded' | 'failed'; error: string | null; nextAttemptAt?: Date }): Promise<void> {
    await this.db
      .update(emailDeliveries)
      .set({ ...outcome, sentAt: outcome.status === 'succeeded' ? new Date() : null })
      .where(eq(emailDeliveries.id, id));
  }

  // ---- pruning (DELIVERY_RETENTION_DAYS)

  /**
   * Deletes up to `limit` webhook deliveries that succeeded or failed and were created more than
   * `retentionDays` ago; returns how many. Pending rows are never deleted. The age is counted
   * from created_at: a failed attempt records no finish time, and an attempt is made within
   * WEBHOOK_BACKOFF_MAX_MS (plus its lease) of its row's creation. Rows another pruner holds are
   * skipped (SKIP LOCKED). The statuses are literals, as in the predicate of
   * webhook_deliveries_finished_idx (migration 0005), so that every plan can use that index.
   */
  async pruneWebhookDeliveries(retentionDays: number, limit: number): Promise<number> {
    const old = this.db
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(
        and(
          sql`${webhookDeliveries.status} in ('succeeded', 'failed')`,
          lt(webhookDeliveries.createdAt, sql`now() - make_interval(days => ${retentionDays})`),
        ),
      )
      .limit(limit)
      .for('update', { skipLocked: true });
    const rows = await this.db.delete(webhookDeliveries).where(inArray(webhookDeliveries.id, old)).returning({ id: webhookDeliveries.id });
    return rows.length;
  }

  /** As pruneWebhookDeliveries, for emails that were sent or given up on (email_deliveries_finished_idx). */
  async pruneEmailDeliveries(retentionDays: number, limit: number): Promise<number> {
    const old = this.db
      .select({ id: emailDeliveries.id })
      .from(emailDeliveries)
      .where(
        and(sql`${emailDeliveries.status} in ('succeeded', 'failed')`, lt(emailDeliveries.createdAt, sql`now() - make_interval(days => ${retentionDays})`)),
      )
      .limit(limit)
      .for('update', { skipLocked: true });
    const rows = await this.db.delete(emailDeliveries).where(inArray(emailDeliveries.id, old)).returning({ id: emailDeliveries.id });
    return rows.length;
  }
}
