// The users table (migrations/0001_init.sql), owned by the users module.
import { pgEnum, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { ts } from '../../infra/db/columns.js';
import { ROLES } from '../../shared/actor.js';

export const userRole = pgEnum('user_role', ROLES);

export const users = pgTable('users', {
  id: uuid('id').primaryKey(),
  email: text('email').notNull(),
  passwordHash: text('password_hash').notNull(),
  role: userRole('role').notNull().default('user'),
  name: text('name'),
  createdAt: ts('created_at').notNull(),
  updatedAt: ts('updated_at').notNull(),
});

export type UserRow = typeof users.$inferSelect;
