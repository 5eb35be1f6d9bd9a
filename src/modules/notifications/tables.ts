// The notifications module's tables (migrations/0003_notifications.sql, 0006_webhook_url_unique.sql,
// 0009_service_data.sql).
import { boolean, integer, jsonb, pgTable, primaryKey, text, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../../infra/db/columns.js';
import type { TaskEventType } from '../../shared/events.js';

/**
 * The module's copy of the accounts (kept by the account events): where emails go, and whether
 * the account's deletion reached the module (deleted_at). A write of the user's own holds the row
 * (FOR SHARE) for its transaction; the deletion takes it before it deletes the user's rows.
 */
export const notificationRecipients = pgTable('notification_recipients', {
  userId: uuid('user_id').primaryKey(),
  email: text('email'),
  updatedAt: ts('updated_at'),
  deletedAt: ts('deleted_at'),
});

export const processedEvents = pgTable(
  'processed_events',
  {
    consumer: text('consumer').notNull(),
    eventId: uuid('event_id').notNull(),
    processedAt: ts('processed_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.consumer, t.eventId] })],
);

export const notificationPreferences = pgTable('notification_preferences', {
  userId: uuid('user_id').primaryKey(),
  inApp: boolean('in_app').notNull().default(true),
  email: boolean('email').notNull().default(false),
  webhooks: boolean('webhooks').notNull().default(true),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const notifications = pgTable(
  'notifications',
  {
    userId: uuid('user_id').notNull(),
    id: uuid('id').notNull(),
    eventId: uuid('event_id').notNull(),
    taskId: uuid('task_id'),
    type: text('type').$type<TaskEventType>().notNull(),
    title: text('title').notNull(),
    body: text('body').notNull(),
    createdAt: ts('created_at').notNull(),
    readAt: ts('read_at'),
  },
  (t) => [primaryKey({ columns: [t.userId, t.id] }), unique().on(t.userId, t.eventId)],
);

export const webhooks = pgTable(
  'webhooks',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    url: text('url').notNull(),
    events: text('events').array().$type<TaskEventType[]>().notNull(),
    secret: text('secret').notNull(),
    active: boolean('active').notNull().default(true),
    createdAt: ts('created_at').notNull(),
    updatedAt: ts('updated_at').notNull(),
  },
  // migrations/0006_webhook_url_unique.sql
  (t) => [uniqueIndex('webhooks_user_url_key').on(t.userId, t.url)],
);

export const deliveryStatus = ['pending', 'succeeded', 'failed'] as const;

export const webhookDeliveries = pgTable('webhook_deliveries', {
  id: uuid('id').primaryKey(),
  webhookId: uuid('webhook_id').notNull(),
  eventId: uuid('event_id').notNull(),
  attempt: integer('attempt').notNull(),
  status: text('status', { enum: deliveryStatus }).notNull().default('pending'),
  payload: jsonb('payload').notNull(),
  responseStatus: integer('response_status'),
  error: text('error'),
  nextAttemptAt: ts('next_attempt_at').notNull(),
  createdAt: ts('created_at').notNull(),
  deliveredAt: ts('delivered_at'),
});

export const emailDeliveries = pgTable(
  'email_deliveries',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    eventId: uuid('event_id').notNull(),
    recipient: text('recipient').notNull(),
    subject: text('subject').notNull(),
    body: text('body').notNull(),
    attempts: integer('attempts').notNull().default(0),
    status: text('status', { enum: deliveryStatus }).notNull().default('pending'),
    error: text('error'),
    nextAttemptAt: ts('next_attempt_at').notNull(),
    createdAt: ts('created_at').notNull(),
    sentAt: ts('sent_at'),
  },
  (t) => [unique().on(t.userId, t.eventId)],
);

export type NotificationRow = typeof notifications.$inferSelect;
export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
export type EmailDeliveryRow = typeof emailDeliveries.$inferSelect;
