// Startup tells the truth about the schema (openInfrastructure, which serve and worker call): with
// MIGRATE_ON_START=false, a database that lacks a migration of this version is refused, with a
// message naming `npm run migrate`, instead of a process whose /health says ok while every call
// is a 500. A database a newer version migrated further is served, with a warning naming the
// migrations this version does not know (docs/decisions.md).
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/infra/db/database.js';
import { migrate, migrationState } from '../../src/infra/db/migrate.js';
import { openInfrastructure } from '../../src/infrastructure.js';
import { StartupError } from '../../src/shared/errors.js';
import { testPrivateKey } from '../helpers/app.js';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '../helpers/database.js';

const MIGRATIONS = readdirSync(new URL('../../migrations/', import.meta.url))
  .filter((f) => f.endsWith('.sql'))
  .sort();
const made: TestDatabase[] = [];
afterAll(async () => {
  for (const db of made) await db.drop();
});

async function empty(): Promise<TestDatabase> {
  const db = await createEmptyDatabase();
  made.push(db);
  return db;
}
async function migrated(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  made.push(db);
  return db;
}

const configFor = (db: TestDatabase, migrateOnStart: boolean) =>
  loadConfig({ NODE_ENV: 'test', DATABASE_URL: db.url, MIGRATE_ON_START: String(migrateOnStart), JWT_PRIVATE_KEY: testPrivateKey(), METRICS_ENABLED: 'false' });

function capturingLog() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

async function refusal(db: TestDatabase): Promise<StartupError> {
  try {
    const infra = await openInfrastructure(configFor(db, false), pino({ level: 'silent' }));
    await infra.close();
  } catch (err) {
    expect(err).toBeInstanceOf(StartupError);
    return err as StartupError;
  }
  throw new Error('expected openInfrastructure to refuse the database');
}

async function sql<T>(db: TestDatabase, text: string, params: unknown[] = []): Promise<T[]> {
  const database = await openDatabase({ url: db.url, poolMax: 1, prepare: false, dataDir: ':memory:' });
  try {
    return await database.raw.query<T>(text, params);
  } finally {
    await database.close();
  }
}

describe('MIGRATE_ON_START=false: a database without this version\u2019s migrations is refused', () => {
  it('an empty database: every migration named, and what to run', async () => {
    const err = await refusal(await empty());
    expect(err.message).toContain('npm run migrate');
    expect(err.message).toContain('MIGRATE_ON_START=true');
    expect(err.message).toContain(`missing ${MIGRATIONS.length} migrations`);
    for (const file of MIGRATIONS) expect(err.message).toContain(file);
  });

  it('a database one migration behind: that migration named', async () => {
    const db = await migrated();
    const last = MIGRATIONS.at(-1)!;
    await sql(db, 'delete from schema_migrations where name = $1', [last]);
    const err = await refusal(db);
    expect(err.message).toMatch(new RegExp(`missing 1 migration of this version \\(${last.replace('.', '\\.')}\\)`));
  });

  it('the same database once migrated (npm run migrate does this) opens and serves', async () => {
    const db = await empty();
    const database = await openDatabase({ url: db.url, poolMax: 1, prepare: false, dataDir: ':memory:' });
    expect(await migrationState(database)).toEqual({ pending: MIGRATIONS, unknown: [] });
    expect(await migrate(database, { taskPartitions: 2 })).toEqual(MIGRATIONS);
    expect(await migrationState(database)).toEqual({ pending: [], unknown: [] });
    await database.close();
    const config = configFor(db, false);
    const infra = await openInfrastructure(config, pino({ level: 'silent' }));
    const app = await buildApp({ config, ...infra, logger: false });
    try {
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email: 'first@example.test', password: 'first password' } })).statusCode).toBe(201);
    } finally {
      await app.close();
      await infra.close();
    }
  });
});

describe('MIGRATE_ON_START=true migrates an empty database and opens it', () => {
  it('nothing pending afterwards', async () => {
    const db = await empty();
    const { log, lines } = capturingLog();
    const infra = await openInfrastructure(configFor(db, true), log);
    try {
      expect(await migrationState(infra.database)).toEqual({ pending: [], unknown: [] });
      expect(lines.find((l) => l.msg === 'migrations applied')).toMatchObject({ applied: MIGRATIONS });
    } finally {
      await infra.close();
    }
  });
});

describe('a database a newer version migrated further', () => {
  it('opens, warning once with the migrations this version does not know', async () => {
    const db = await migrated();
    await sql(db, "insert into schema_migrations (name) values ('9999_from_a_newer_version.sql')");
    const { log, lines } = capturingLog();
    const infra = await openInfrastructure(configFor(db, false), log);
    try {
      const warnings = lines.filter((l) => l.level === 40 && Array.isArray(l.unknown));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ unknown: ['9999_from_a_newer_version.sql'], msg: expect.stringContaining('does not know') });
      await infra.database.ping();
    } finally {
      await infra.close();
    }
  });
});
