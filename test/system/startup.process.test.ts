// The built CLI against a database without migrations, MIGRATE_ON_START=false (the default with
// DATABASE_URL): serve and worker refuse to start, exit 1 and say to run `npm run migrate`, rather
// than answer /health ok and 500 to every call. After `task-api migrate`, serve starts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueEmail } from '../helpers/app.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { jsonRequest, runCli, startServer } from '../helpers/process.js';
import { servicesEnv } from '../helpers/server-fixture.js';

let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createEmptyDatabase();
  env = { ...servicesEnv(db), MIGRATE_ON_START: 'false' };
});
afterAll(() => db.drop());

describe('task-api on a database without migrations', () => {
  it('serve exits 1 with the message alone, naming npm run migrate; nothing ever answered', async () => {
    const refused = await startServer(env).then(
      async (server) => {
        await server.kill('SIGKILL');
        return undefined;
      },
      (err: Error) => err,
    );
    expect(refused?.message).toMatch(/^server exited with 1:\n/);
    expect(refused!.message).toMatch(/The database is missing \d+ migrations of this version \(0001_init\.sql, /);
    expect(refused!.message).toContain('run `npm run migrate` (task-api migrate) with the same DATABASE_URL, or start with MIGRATE_ON_START=true.');
    expect(refused!.message).not.toContain('    at '); // a refusal, not a crash: no stack
  });

  it('worker exits 1 the same way', async () => {
    const worker = await runCli(['worker'], { ...env, NODE_ENV: 'production', METRICS_ENABLED: 'false' });
    expect(worker.code).toBe(1);
    expect(worker.stderr).toContain('npm run migrate');
  });

  it('after task-api migrate, serve starts and serves', async () => {
    const migrated = await runCli(['migrate'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(/^applied: 0001_init\.sql, /);
    const server = await startServer(env);
    try {
      expect((await jsonRequest(`${server.url}/health`, 'GET')).status).toBe(200);
      expect((await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: uniqueEmail('startup'), password: 'startup password' })).status).toBe(201);
    } finally {
      expect(await server.kill('SIGTERM')).toBe(0);
    }
  });
});
