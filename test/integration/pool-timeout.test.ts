// DATABASE_URL's pool parameters at work: connection_limit=1 and pool_timeout=1 on a real
// PostgreSQL. While a transaction holds the only connection, a request that needs one waits at
// most the pool timeout and answers 503 problem+json with Retry-After (not a 500, not a hang);
// once the connection is free again requests succeed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
let t: TestApp;
let s: SessionBody;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createTestApp({ env: { DATABASE_URL: `${db.url}?connection_limit=1&pool_timeout=1&connect_timeout=5`, CACHE_ENABLED: 'false' } });
  s = await register(t.app);
});

afterAll(async () => {
  await t?.close();
  await db?.drop();
});

describe('pool_timeout', () => {
  it('is read from the URL, and a statement that waits longer for a connection answers 503 with Retry-After', async () => {
    expect(t.config.database).toMatchObject({ poolMax: 1, poolTimeoutMs: 1000, connectTimeoutSeconds: 5 });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    // The only connection, held by a transaction until the request below has been answered.
    const tx = t.database.rawTransaction(async (raw) => {
      await raw.query('select 1');
      holding();
      await released;
    });
    await held;
    const res = await as(t.app, s.accessToken)({ method: 'GET', url: '/v1/tasks' });
    release();
    await tx;
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toMatchObject({ status: 503, type: 'urn:task-api:problem:service-unavailable' });

    const after = await as(t.app, s.accessToken)({ method: 'GET', url: '/v1/tasks' });
    expect(after.statusCode).toBe(200);
  });
});
