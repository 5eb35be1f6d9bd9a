// The Drizzle table definitions must describe the tables the SQL migrations create.
import { getTableColumns, getTableName } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, type Database } from '../../src/infra/db/database.js';
import { migrate } from '../../src/infra/db/migrate.js';
import { ADMIN_DATABASE_URL, databaseUrl } from '../setup/services.js';
import { eventRetries, outbox } from '../../src/events/tables.js';
import { emailDeliveries, notificationPreferences, notifications, processedEvents, webhookDeliveries, webhooks } from '../../src/modules/notifications/tables.js';
import { tasks } from '../../src/modules/tasks/table.js';
import { users } from '../../src/modules/users/table.js';
import { signingKeys } from '../../src/modules/auth/table.js';
import { readdirSync } from 'node:fs';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

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

describe('schema', () => {
  it.each([users, tasks, outbox, processedEvents, notificationPreferences, notifications, webhooks, webhookDeliveries, emailDeliveries, eventRetries, signingKeys] as PgTable[])('Drizzle columns match the migrated table %#', async (table) => {
    const name = getTableName(table);
    const rows = await database.raw.query<{ column_name: string; is_nullable: string }>(
      `select column_name, is_nullable from information_schema.columns where table_schema = 'public' and table_name = $1`,
      [name],
    );
    const actual = new Map(rows.map((r) => [r.column_name, r.is_nullable === 'YES']));
    for (const col of Object.values(getTableColumns(table))) {
      expect(actual.has(col.name), `${name}.${col.name} exists`).toBe(true);
      expect(actual.get(col.name), `${name}.${col.name} nullability`).toBe(!col.notNull);
    }
    // Columns the migration has and Drizzle does not: only the generated search vector.
    const declared = new Set(Object.values(getTableColumns(table)).map((c) => c.name));
    expect([...actual.keys()].filter((c) => !declared.has(c))).toEqual(name === 'tasks' ? ['search'] : []);
  });

  it('partitions tasks by hash of user_id into 4 partitions', async () => {
    const parts = await database.raw.query<{ relname: string; bound: string }>(
      `select c.relname, pg_get_expr(c.relpartbound, c.oid) as bound from pg_inherits i join pg_class c on c.oid = i.inhrelid
       where i.inhparent = 'tasks'::regclass order by c.relname`,
    );
    expect(parts.map((p) => p.bound)).toEqual([0, 1, 2, 3].map((r) => `FOR VALUES WITH (modulus 4, remainder ${r})`));
    const key = await database.raw.query<{ def: string }>(`select pg_get_partkeydef('tasks'::regclass) as def`);
    expect(key[0]!.def).toBe('HASH (user_id)');
  });

  it('takes the partition count from configuration, and migrating twice changes nothing', async () => {
    const name = `task_api_test_${process.pid}_parts_${randomBytes(3).toString('hex')}`;
    const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const fresh = await openDatabase({ url: databaseUrl(name), poolMax: 2, prepare: true, dataDir: ':memory:' });
    try {
      // Two instances migrating at once: the advisory lock lets one apply and the other see it done.
      const [a, b] = await Promise.all([migrate(fresh, { taskPartitions: 8 }), migrate(fresh, { taskPartitions: 8 })]);
      const files = readdirSync(new URL('../../migrations/', import.meta.url)).filter((f) => f.endsWith('.sql')).sort();
      expect([...a, ...b]).toEqual(files);
      expect(await migrate(fresh, { taskPartitions: 8 })).toEqual([]);
      const n = await fresh.raw.query<{ n: number }>(`select count(*)::int as n from pg_inherits where inhparent = 'tasks'::regclass`);
      expect(n[0]!.n).toBe(8);
    } finally {
      await fresh.close();
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });
});
