// For test files that run the built server (startServer) on this run's services: a database and a
// temporary directory of the file's own, made before its tests and removed after them, and the
// environment that points a server at them.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { REDIS_URL } from '../setup/services.js';
import { testPrivateKey } from './app.js';
import { createTestDatabase, type TestDatabase } from './database.js';

/** DATABASE_URL, the shared Redis under a key prefix of its own, and a fresh signing key. */
export function servicesEnv(db: TestDatabase): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    JWT_PRIVATE_KEY: testPrivateKey(),
  };
}

export interface ServerFixture {
  /** The file's database: there from its beforeAll on. */
  readonly db: TestDatabase;
  /** The file's temporary directory (a DATA_DIR, report files). */
  readonly dir: string;
}

/** Registers the beforeAll and afterAll of a file's database and temporary directory (named dirPrefix...). */
export function serverFixture(dirPrefix: string): ServerFixture {
  let db: TestDatabase | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), dirPrefix));
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const made = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`serverFixture: the ${what} is made in beforeAll`);
    return value;
  };
  return {
    get db() {
      return made(db, 'database');
    },
    get dir() {
      return made(dir, 'directory');
    },
  };
}
