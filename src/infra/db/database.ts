// The database port: Drizzle over postgres.js (production) or PGlite (embedded default).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { ParameterOrJSON, TransactionSql } from 'postgres';
import { observeClient, type QueryObserver } from './observe.js';

/** Drizzle over either driver. Tables are defined by the code that owns them (modules, events). */
export type Db = PgDatabase<PgQueryResultHKT>;

/** Plain SQL access, used by migrations and operational commands only. */
export interface RawSql {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Runs several statements separated by semicolons, without parameters. */
  script(text: string): Promise<void>;
}

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /** Runs fn in one transaction with raw SQL (migrations, locks). */
  rawTransaction<T>(fn: (raw: RawSql) => Promise<T>): Promise<T>;
  raw: RawSql;
  /** Statements sent so far by this process (the PostgreSQL driver counts; PGlite reports 0). */
  queryCount(): number;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url: string | undefined;
  poolMax: number;
  prepare: boolean;
  /** Directory for the embedded database; ':memory:' keeps it in memory. */
  dataDir: string;
  /** Told about every statement (PostgreSQL only): the entry point passes metrics and trace spans. */
  observers?: QueryObserver[];
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  return opts.url ? openPostgres(opts.url, opts) : openPglite(opts.dataDir);
}

async function openPostgres(url: string, opts: DatabaseOptions): Promise<Database> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  let queries = 0;
  const counter: QueryObserver = () => {
    queries++;
    return () => undefined;
  };
  const pool = postgres(url, {
    max: opts.poolMax,
    prepare: opts.prepare,
    onnotice: () => undefined,
    connection: { application_name: 'task-api' },
  });
  const client = observeClient(pool, [counter, ...(opts.observers ?? [])], opts.prepare);
  type Client = typeof client;
  const rawOf = (c: Client | TransactionSql): RawSql => ({
    query: async <T>(text: string, params: unknown[] = []) =>
      (await c.unsafe(text, params as ParameterOrJSON<never>[])) as unknown as T[],
    script: async (text: string) => {
      await c.unsafe(text);
    },
  });
  return {
    kind: 'postgres',
    db: drizzle(client) as unknown as Db,
    raw: rawOf(client),
    queryCount: () => queries,
    rawTransaction: async <T>(fn: (raw: RawSql) => Promise<T>) =>
      (await client.begin((tx) => fn(rawOf(tx)))) as T,
    ping: async () => {
      await client.unsafe('select 1');
    },
    close: () => pool.end({ timeout: 5 }),
  };
}

/**
 * PostgreSQL settings of the embedded database. PGlite starts with a server's defaults
 * (shared_buffers 128MB, maintenance_work_mem 64MB) inside this process's WebAssembly heap, which
 * never shrinks: the buffers alone made 120 MB of resident memory (docs/performance.md, Embedded).
 * Every read of a buffer not in shared_buffers is a read from the OS page cache, not the disk.
 */
export const PGLITE_SETTINGS = ['shared_buffers=16MB', 'maintenance_work_mem=16MB', 'temp_buffers=2MB'];

/**
 * Creates a new embedded database (initdb) in a child process. In this process the initdb
 * instance leaves about 450 MB resident behind it (its WebAssembly heaps are never returned), so
 * a first start would run on 3 times the memory of every later start.
 */
async function initPglite(location: string): Promise<void> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const script =
    'const { PGlite } = require(process.argv[1]);' +
    'PGlite.create(process.argv[2]).then((pg) => pg.close()).catch((err) => { console.error(err); process.exit(1); });';
  try {
    await promisify(execFile)(process.execPath, ['-e', script, entry, location]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`creating the embedded database under ${location} failed${stderr ? `: ${stderr}` : ''}`, { cause: err });
  }
}

async function openPglite(dataDir: string): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  let location: string | undefined;
  if (dataDir !== ':memory:') {
    location = path.resolve(dataDir, 'pglite');
    await mkdir(location, { recursive: true });
    if (!existsSync(path.join(location, 'PG_VERSION'))) await initPglite(location);
  }
  const options = { startParams: [...PGlite.defaultStartParams, ...PGLITE_SETTINGS.flatMap((s) => ['-c', s])] };
  const pg = location ? await PGlite.create(location, options) : await PGlite.create(options);
  type Tx = Parameters<Parameters<typeof pg.transaction>[0]>[0];
  const rawOf = (c: typeof pg | Tx): RawSql => ({
    query: async <T>(text: string, params: unknown[] = []) => (await c.query<T>(text, params)).rows,
    script: async (text: string) => {
      await c.exec(text);
    },
  });
  return {
    kind: 'pglite',
    db: drizzle(pg) as unknown as Db,
    raw: rawOf(pg),
    queryCount: () => 0,
    rawTransaction: async <T>(fn: (raw: RawSql) => Promise<T>) => pg.transaction((tx) => fn(rawOf(tx))),
    ping: async () => {
      await pg.query('select 1');
    },
    close: () => pg.close(),
  };
}
