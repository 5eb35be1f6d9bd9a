// A connection lost inside a transaction (a PostgreSQL failover, PgBouncer's "server conn
// crashed?"): postgres.js 3.4.9 writes the transaction's ROLLBACK to the dead connection and its
// deferred flush threw a TypeError no caller could catch, ending the process
// (porsager/postgres#1208; every API instance died at the first Patroni failover). With
// tools/patch-postgres.mjs applied (npm's postinstall) the transaction fails with a connection
// error (503), the process lives on, and the same pooled connection serves the next statements.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/infra/db/database.js';
import { isDatabaseUnavailable } from '../../src/shared/db-errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
// @ts-expect-error: plain JavaScript, Node built-ins only (tools/patch-postgres.mjs)
import { patchConnection } from '../../tools/patch-postgres.mjs';

let testDb: TestDatabase;

beforeAll(async () => {
  testDb = await createTestDatabase();
});

afterAll(async () => {
  await testDb.drop();
});

describe('postgres.js: a connection lost inside a transaction', () => {
  it('is patched in node_modules (every copy of connection.js), and patching again changes nothing', () => {
    const dir = fileURLToPath(new URL('../../node_modules/postgres', import.meta.url));
    for (const copy of ['src', 'cjs/src']) {
      const text = readFileSync(path.join(dir, copy, 'connection.js'), 'utf8');
      expect(text).toContain('task-api patch (tools/patch-postgres.mjs)');
      expect((patchConnection as (t: string) => { changed: boolean })(text).changed).toBe(false);
    }
  });

  it('fails the transaction with a connection error, keeps the process, and the pool serves the next statements', async () => {
    const database = await openDatabase({ url: testDb.url, poolMax: 1, prepare: true, dataDir: '' });
    const admin = postgres(testDb.url, { max: 1, onnotice: () => undefined });
    try {
      for (let round = 0; round < 3; round++) {
        let pid: number | undefined;
        const tx = database.rawTransaction(async (raw) => {
          const [row] = await raw.query<{ pid: number }>('select pg_backend_pid() as pid');
          pid = row!.pid;
          await raw.query('select pg_sleep(5)');
        });
        const outcome = tx.then(
          () => undefined,
          (err: unknown) => err,
        );
        for (let i = 0; i < 100 && pid === undefined; i++) await new Promise((r) => setTimeout(r, 20));
        expect(pid).toBeDefined();
        await admin`select pg_terminate_backend(${pid!})`;
        const err = await outcome;
        expect(isDatabaseUnavailable(err), String(err)).toBe(true);
        // A tick for the driver's deferred flush, which used to end the process here.
        await new Promise((r) => setImmediate(r));
        let answered: unknown;
        for (let i = 0; i < 50 && answered === undefined; i++) {
          answered = await database.raw.query<{ n: number }>('select 1 as n').catch(() => undefined);
          if (answered === undefined) await new Promise((r) => setTimeout(r, 100));
        }
        expect(answered).toEqual([{ n: 1 }]);
      }
    } finally {
      await admin.end();
      await database.close();
    }
  });
});
