// Once per run: a template database with every migration applied. Each test file clones it
// (CREATE DATABASE ... TEMPLATE), which takes milliseconds, and drops its clone afterwards.
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/infra/db/database.js';
import { migrate } from '../../src/infra/db/migrate.js';
import { ensureBuilt } from './build.js';
import { ADMIN_DATABASE_URL, databaseUrl } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

const RUN_PREFIX = `task_api_test_${process.pid}`;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  ensureBuilt(new URL('../..', import.meta.url).pathname);
  const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => undefined });
  const template = `${RUN_PREFIX}_tmpl`;
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template}`);
  await admin.unsafe(`CREATE DATABASE ${template}`);
  const db = await openDatabase({ url: databaseUrl(template), poolMax: 1, prepare: true, dataDir: ':memory:' });
  await migrate(db, { taskPartitions: 4 });
  await db.close();
  project.provide('templateDatabase', template);

  return async () => {
    const leftovers = await admin<{ datname: string }[]>`select datname from pg_database where datname like ${`${RUN_PREFIX}%`}`;
    for (const { datname } of leftovers) await admin.unsafe(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    await admin.end();
  };
}
