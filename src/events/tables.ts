// The event plumbing's tables: the outbox (written in the change's transaction) and the in-process
// bus's retries and dead letters.
import { integer, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../infra/db/columns.js';
import type { DomainEvent } from '../shared/events.js';

/** migrations/0002_outbox.sql: events written with the change, published by the relay. */
export const outbox = pgTable('outbox', {
  id: uuid('id').primaryKey(),
  aggregate: text('aggregate').notNull(),
  aggregateId: uuid('aggregate_id').notNull(),
  userId: uuid('user_id').notNull(),
  type: text('type').notNull(),
  payload: jsonb('payload').$type<DomainEvent>().notNull(),
  traceContext: jsonb('trace_context').$type<DomainEvent['traceContext']>(),
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
    payload: jsonb('payload').$type<DomainEvent>().notNull(),
    attempts: integer('attempts').notNull(),
    nextAttemptAt: ts('next_attempt_at').notNull(),
    lastError: text('last_error').notNull(),
    reason: text('reason', { enum: ['failed', 'poison'] }).notNull().default('failed'),
    deadAt: ts('dead_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.consumer, t.eventId] })],
);

export type OutboxRow = typeof outbox.$inferSelect;
