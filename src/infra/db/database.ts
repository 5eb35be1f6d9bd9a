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
import { guardDriverRejections, type DriverWarn } from './driver-guard.js';
import { PoolGate } from './pool-gate.js';

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
  /**
   * Runs a read of the user's data on a server that has the user's writes: a streaming replica
   * when one is configured and has replayed them (src/infra/db/router.ts), else this database.
   */
  read<T>(userId: string, fn: (db: Db) => Promise<T>): Promise<T>;
  /** Told after a write of the user's data committed (read-your-writes); nothing without replicas. */
  wrote(userId: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url: string | undefined;
  poolMax: number;
  prepare: boolean;
  /** Seconds to wait for a connection to open (DATABASE_URL connect_timeout); 10 when not given. */
  connectTimeoutSeconds?: number;
  /** Milliseconds a statement may wait for a free connection (pool_timeout); no limit when 0 or absent. */
  poolTimeoutMs?: number;
  /** application_name, as pg_stat_activity shows it. */
  applicationName?: string;
  /** Where the driver's swallowed connection errors are reported (src/infra/db/driver-guard.ts). */
  warn?: DriverWarn;
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
  guardDriverRejections(opts.warn ?? ((obj, msg) => console.error(msg, obj)));
  let queries = 0;
  const counter: QueryObserver = () => {
    queries++;
    return () => undefined;
  };
  const pool = postgres(url, {
    max: opts.poolMax,
    // false: every statement is sent unnamed (Parse/Bind with an empty name), which PgBouncer in
    // transaction mode can carry; true: named prepared statements, once per connection.
    prepare: opts.prepare,
    connect_timeout: opts.connectTimeoutSeconds ?? 10,
    // postgres.js waits before each new connection attempt after failures, up to 20 s with its own
    // backoff: a request arriving during an outage would wait that long before it could fail. The
    // wait is capped at 1 s, so requests fail fast while the database (or PgBouncer) is away and
    // the pool reconnects within a second of it coming back. Attempts are made on demand only.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2),
    onnotice: () => undefined,
    connection: { application_name: opts.applicationName ?? 'task-api' },
  });
  const gate = opts.poolTimeoutMs ? new PoolGate(opts.poolMax, opts.poolTimeoutMs) : undefined;
  const client = observeClient(pool, [counter, ...(opts.observers ?? [])], opts.prepare, gate);
  type Client = typeof client;
  const db = drizzle(client) as unknown as Db;
  const rawOf = (c: Client | TransactionSql): RawSql => ({
    query: async <T>(text: string, params: unknown[] = []) =>
      (await c.unsafe(text, params as ParameterOrJSON<never>[])) as unknown as T[],
    script: async (text: string) => {
      await c.unsafe(text);
    },
  });
  return {
    kind: 'postgres',
    db,
    raw: rawOf(client),
    queryCount: () => queries,
    read: (_userId, fn) => fn(db),
    wrote: () => Promise.resolve(),
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
  const db = drizzle(pg) as unknown as Db;
  return {
    kind: 'pglite',
    db,
    raw: rawOf(pg),
    queryCount: () => 0,
    read: (_userId, fn) => fn(db),
    wrote: () => Promise.resolve(),
    rawTransaction: async <T>(fn: (raw: RawSql) => Promise<T>) => pg.transaction((tx) => fn(rawOf(tx))),
    ping: async () => {
      await pg.query('select 1');
    },
    close: () => pg.close(),
  };
}
