// The tasks table (migrations/0001_init.sql: hash-partitioned by user_id) and each user's count
// of tasks (0007_task_counts.sql), owned by the tasks module.
import { sql } from 'drizzle-orm';
import { boolean, integer, pgEnum, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { ROLES } from '../../shared/actor.js';
import { ts } from '../../infra/db/columns.js';
import { DEFAULT_TASK_PRIORITY, DEFAULT_TASK_STATUS, TASK_PRIORITIES, TASK_STATUSES } from '../../shared/task-model.js';

export const taskStatus = pgEnum('task_status', TASK_STATUSES);
export const taskPriority = pgEnum('task_priority', TASK_PRIORITIES);

export const tasks = pgTable(
  'tasks',
  {
    userId: uuid('user_id').notNull(),
    id: uuid('id').notNull(),
    title: text('title').notNull(),
    description: text('description'),
    status: taskStatus('status').notNull().default(DEFAULT_TASK_STATUS),
    priority: taskPriority('priority').notNull().default(DEFAULT_TASK_PRIORITY),
    dueAt: ts('due_at'),
    tags: text('tags').array().notNull().default(sql`'{}'`),
    createdAt: ts('created_at').notNull(),
    updatedAt: ts('updated_at').notNull(),
    completedAt: ts('completed_at'),
    version: integer('version').notNull().default(1),
  },
  (t) => [primaryKey({ columns: [t.userId, t.id] })],
);

export type TaskRow = typeof tasks.$inferSelect;

/** How many tasks each user holds, kept by the repository's inserts and deletes. */
export const taskCounts = pgTable('task_counts', {
  userId: uuid('user_id').primaryKey(),
  tasks: integer('tasks').notNull(),
  /** The account was deleted (migrations/0009_service_data.sql): no create passes. */
  closed: boolean('closed').notNull().default(false),
});

/** migrations/0009_service_data.sql: the module's copy of the accounts, kept by the account events. */
export const taskOwners = pgTable('task_owners', {
  userId: uuid('user_id').primaryKey(),
  email: text('email').notNull(),
  role: text('role', { enum: ROLES }).notNull(),
  updatedAt: ts('updated_at').notNull(),
  deletedAt: ts('deleted_at'),
});
