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

export async function migrate(database: Database, opts: MigrateOptions): Promise<string[]> {
  const dir = opts.dir ?? MIGRATIONS_DIR;
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
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
