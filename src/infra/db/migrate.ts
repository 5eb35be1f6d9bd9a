// Applies migrations/*.sql in name order, each once, under an advisory lock so that several
// instances starting together do not race.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));
const LOCK_KEY = 7_340_211; // arbitrary, constant: identifies "task-api migrations"

export interface MigrateOptions {
  taskPartitions: number;
  dir?: string;
}

const migrationFiles = async (dir: string) => (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();

export async function migrate(database: Database, opts: MigrateOptions): Promise<string[]> {
  const dir = opts.dir ?? MIGRATIONS_DIR;
  const files = await migrationFiles(dir);
  return database.rawTransaction(async (raw) => {
    await raw.query('select pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await raw.script(
      'CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set((await raw.query<{ name: string }>('select name from schema_migrations')).map((r) => r.name));
    await raw.query("select set_config('task_api.task_partitions', $1, true)", [String(opts.taskPartitions)]);
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await raw.script(await readFile(`${dir}/${file}`, 'utf8'));
      await raw.query('insert into schema_migrations (name) values ($1)', [file]);
      applied.push(file);
    }
    return applied;
  });
}

export interface MigrationState {
  /** Files of migrations/ the database has not applied (all of them on an empty database). */
  pending: string[];
  /** Migrations the database has applied that migrations/ does not have: a newer version's. */
  unknown: string[];
}

/** Compares migrations/ with schema_migrations, changing nothing. */
export async function migrationState(database: Database, dir: string = MIGRATIONS_DIR): Promise<MigrationState> {
  const files = await migrationFiles(dir);
  const [table] = await database.raw.query<{ present: boolean }>("select to_regclass('schema_migrations') is not null as present");
  const applied = table?.present ? (await database.raw.query<{ name: string }>('select name from schema_migrations')).map((r) => r.name) : [];
  const done = new Set(applied);
  const known = new Set(files);
  return { pending: files.filter((f) => !done.has(f)), unknown: applied.filter((a) => !known.has(a)).sort() };
}
