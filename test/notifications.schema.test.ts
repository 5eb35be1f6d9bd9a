// The notifications tables as Drizzle describes them match migrations/0003_notifications.sql, and
// the notification settings are validated like every other variable.
import { getTableColumns, getTableName } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { openDatabase, type Database } from '../src/infra/db/database.js';
import {
  emailDeliveries,
  notificationPreferences,
  notifications,
  processedEvents,
  webhookDeliveries,
  webhooks,
} from '../src/infra/db/schema.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let testDb: TestDatabase;
let database: Database;
beforeAll(async () => {
  testDb = await createTestDatabase();
  database = await openDatabase({ url: testDb.url, poolMax: 1, prepare: true, dataDir: ':memory:' });
});
afterAll(async () => {
  await database.close();
  await testDb.drop();
});

describe('notifications schema', () => {
  it.each([processedEvents, notificationPreferences, notifications, webhooks, webhookDeliveries, emailDeliveries] as PgTable[])(
    'Drizzle columns match the migrated table %#',
    async (table) => {
      const name = getTableName(table);
      const rows = await database.raw.query<{ column_name: string; is_nullable: string }>(
        `select column_name, is_nullable from information_schema.columns where table_schema = 'public' and table_name = $1`,
        [name],
      );
      const actual = new Map(rows.map((r) => [r.column_name, r.is_nullable === 'YES']));
      const declared = Object.values(getTableColumns(table));
      for (const col of declared) {
        expect(actual.has(col.name), `${name}.${col.name} exists`).toBe(true);
        expect(actual.get(col.name), `${name}.${col.name} nullability`).toBe(!col.notNull);
      }
      expect([...actual.keys()].sort()).toEqual(declared.map((c) => c.name).sort());
    },
  );
});

describe('notifications configuration', () => {
  it('has defaults: no email, private targets refused, 8 attempts, 5 s timeout', () => {
    const n = loadConfig({}).notifications;
    expect(n.smtpUrl).toBeUndefined();
    expect(n.webhooks).toEqual({ allowPrivateTargets: false, maxAttempts: 8, timeoutMs: 5000, backoffBaseMs: 10000, backoffMaxMs: 6 * 3600 * 1000 });
    const set = loadConfig({ SMTP_URL: 'smtp://u:p@mail:587', MAIL_FROM: 'a@b.c', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_MAX_ATTEMPTS: '3' }).notifications;
    expect(set).toMatchObject({ smtpUrl: 'smtp://u:p@mail:587', mailFrom: 'a@b.c', webhooks: { allowPrivateTargets: true, maxAttempts: 3 } });
  });

  it.each([
    ['SMTP_URL', 'http://mail'],
    ['MAIL_FROM', 'nobody'],
    ['WEBHOOK_ALLOW_PRIVATE_TARGETS', 'yes'],
    ['WEBHOOK_MAX_ATTEMPTS', '0'],
    ['WEBHOOK_MAX_ATTEMPTS', 'many'],
    ['WEBHOOK_TIMEOUT_MS', '10'],
    ['WEBHOOK_BACKOFF_BASE_MS', '-1'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    let problems = '';
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      problems = (err as ConfigError).problems.join('\n');
    }
    expect(problems).toContain(name);
  });
});
