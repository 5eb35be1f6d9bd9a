// The signing-key store (migrations/0008_signing_keys.sql), owned by the auth module and shared
// by every auth instance: keys are published, start signing and retire on their timestamps.
import { pgTable, text } from 'drizzle-orm/pg-core';
import { ts } from '../../infra/db/columns.js';

export const signingKeys = pgTable('signing_keys', {
  kid: text('kid').primaryKey(),
  alg: text('alg').notNull(),
  /** PKCS#8 PEM; null for a key kept only to verify (an old JWT_PUBLIC_KEYS entry). */
  privateKey: text('private_key'),
  /** PEM (SPKI) of the public key. */
  publicKey: text('public_key').notNull(),
  createdAt: ts('created_at').notNull(),
  signFrom: ts('sign_from').notNull(),
  retireAt: ts('retire_at'),
});

export type SigningKeyRow = typeof signingKeys.$inferSelect;
