// Drizzle table definitions: the TypeScript view of the tables that migrations/*.sql create.
import { sql } from 'drizzle-orm';
import type { TaskEventType } from '../../shared/events.js';
import { boolean, integer, jsonb, pgEnum, pgTable, primaryKey, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import type { TaskEvent } from '../../shared/events.js';

export const userRole = pgEnum('user_role', ['user', 'admin']);
export const taskStatus = pgEnum('task_status', ['todo', 'in_progress', 'done']);
export const taskPriority = pgEnum('task_priority', ['low', 'medium', 'high', 'urgent']);

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3, mode: 'date' });

export const users = pgTable('users', {
  id: uuid('id').primaryKey(),
  email: text('email').notNull(),
  passwordHash: text('password_hash').notNull(),
  role: userRole('role').notNull().default('user'),
  name: text('name'),
  createdAt: ts('created_at').notNull(),
  updatedAt: ts('updated_at').notNull(),
});

export const tasks = pgTable(
  'tasks',
  {
    userId: uuid('user_id').notNull(),
    id: uuid('id').notNull(),
    title: text('title').notNull(),
    description: text('description'),
    status: taskStatus('status').notNull().default('todo'),
    priority: taskPriority('priority').notNull().default('medium'),
    dueAt: ts('due_at'),
    tags: text('tags').array().notNull().default(sql`'{}'`),
    createdAt: ts('created_at').notNull(),
    updatedAt: ts('updated_at').notNull(),
    completedAt: ts('completed_at'),
    version: integer('version').notNull().default(1),
  },
  (t) => [primaryKey({ columns: [t.userId, t.id] })],
);

// migrations/0003_notifications.sql
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

export const webhooks = pgTable('webhooks', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull(),
  url: text('url').notNull(),
  events: text('events').array().$type<TaskEventType[]>().notNull(),
  secret: text('secret').notNull(),
  active: boolean('active').notNull().default(true),
  createdAt: ts('created_at').notNull(),
  updatedAt: ts('updated_at').notNull(),
});

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

/** migrations/0002_outbox.sql: events written with the change, published by the relay. */
export const outbox = pgTable('outbox', {
  id: uuid('id').primaryKey(),
  aggregate: text('aggregate').notNull(),
  aggregateId: uuid('aggregate_id').notNull(),
  userId: uuid('user_id').notNull(),
  type: text('type').notNull(),
  payload: jsonb('payload').$type<TaskEvent>().notNull(),
  traceContext: jsonb('trace_context').$type<TaskEvent['traceContext']>(),
  createdAt: ts('created_at').notNull().defaultNow(),
  publishedAt: ts('published_at'),
  attempts: integer('attempts').notNull().default(0),
});

/** migrations/0004_event_retries.sql: the in-process bus's retries and dead letters. */
export const eventRetries = pgTable(
  'event_retries',
  {
    consumer: text('consumer').notNull(),
    eventId: uuid('event_id').notNull(),
    type: text('type').notNull(),
    payload: jsonb('payload').$type<TaskEvent>().notNull(),
    attempts: integer('attempts').notNull(),
    nextAttemptAt: ts('next_attempt_at').notNull(),
    lastError: text('last_error').notNull(),
    reason: text('reason', { enum: ['failed', 'poison'] }).notNull().default('failed'),
    deadAt: ts('dead_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.consumer, t.eventId] })],
);

export const schema = { users, tasks, outbox };
export type UserRow = typeof users.$inferSelect;
export type TaskRow = typeof tasks.$inferSelect;
export type OutboxRow = typeof outbox.$inferSelect;
export type NotificationRow = typeof notifications.$inferSelect;
export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
export type EmailDeliveryRow = typeof emailDeliveries.$inferSelect;
