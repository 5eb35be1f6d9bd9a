// The built API through a real PgBouncer in transaction mode (deploy/pgbouncer/pgbouncer.ini,
// rendered by src/operations/cluster/pgbouncer.ts), on a PgBouncer of this file's own on a free
// port, in front of this file's database:
// - the whole API works through it with DATABASE_PREPARE=false (statements sent unnamed), on a
//   server pool far smaller than the API's, so that every client connection is served by
//   whichever server connection is free (a named prepared statement would not be found there);
// - the seed's URL parameters (connection_limit, pool_timeout, connect_timeout) are accepted;
// - PgBouncer gone: requests answer 503 problem+json with Retry-After, none hangs; back: 2xx
//   again, without restarting the API;
// - statements without parameters are not pipelined ahead of others (PgBouncer 1.18 dropped the
//   answers of the statement behind: it hung).
// pgbouncer comes with Debian's pgbouncer package (.ci/run installs it); without it this fails.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/infra/db/database.js';
import { psql } from '../../src/operations/cluster/postgres.js';
import { startPgBouncer, stopPgBouncer } from '../../src/operations/cluster/pgbouncer.js';
import { serverFixture, servicesEnv } from '../helpers/server-fixture.js';
import { freePort, startServer, type ServerProcess } from '../helpers/process.js';

const fx = serverFixture('task-api-pgbouncer-');
/** No request may take longer than this, outage or not (well under the API's request timeout). */
const REQUEST_BOUND_MS = 15_000;

let server: ServerProcess | undefined;
let bouncer: { pid: number; port: number } | undefined;
let pgbPort = 0;

const pgbOptions = () => ({
  dir: path.join(fx.dir, 'pgbouncer'),
  port: pgbPort,
  primaryPort: Number(new URL(fx.db.url).port || 5432),
  logFile: path.join(fx.dir, 'pgbouncer.log'),
  databases: [fx.db.name],
  // Two server connections for the API's ten client connections.
  poolSize: 2,
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | null;
}

async function call(method: string, url: string, opts: { body?: unknown; token?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(`${server!.url}${url}`, {
    method,
    headers: {
      ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    // A request that hangs fails the test here (TimeoutError) instead of waiting for vitest.
    signal: AbortSignal.timeout(REQUEST_BOUND_MS),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
}

beforeAll(async () => {
  expect(spawnSync('pgbouncer', ['--version']).status, 'pgbouncer is not installed: apt-get install -y pgbouncer (bash .ci/run does it)').toBe(0);
  pgbPort = await freePort();
  bouncer = await startPgBouncer(pgbOptions());
  const direct = new URL(fx.db.url);
  server = await startServer({
    ...servicesEnv(fx.db),
    // The seed's spelling of the pool settings, on the PgBouncer's port.
    DATABASE_URL: `postgres://${direct.username}@127.0.0.1:${pgbPort}/${fx.db.name}?schema=public&connection_limit=10&pool_timeout=10&connect_timeout=3`,
    DATABASE_PREPARE: 'false',
    RATE_LIMIT_ENABLED: 'false',
    CACHE_ENABLED: 'false',
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
  });
});

afterAll(async () => {
  await server?.kill();
  if (bouncer) await stopPgBouncer(bouncer.pid, 'kill');
});

describe('through PgBouncer in transaction mode', () => {
  let token = '';

  it('serves the whole API: accounts, tasks (transactions, If-Match, lists), notifications, webhooks', async () => {
    const email = `pgb-${Date.now()}@example.com`;
    const reg = await call('POST', '/v1/auth/register', { body: { email, password: 'pgbouncer password', name: 'Pat' } });
    expect(reg.status).toBe(201);
    const login = await call('POST', '/v1/auth/login', { body: { email, password: 'pgbouncer password' } });
    expect(login.status).toBe(200);
    token = login.body!.accessToken as string;
    const refreshed = await call('POST', '/v1/auth/refresh', { body: { refreshToken: login.body!.refreshToken } });
    expect(refreshed.status).toBe(200);

    // Many statements at once from the API's ten connections over PgBouncer's two.
    const created = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        call('POST', '/v1/tasks', { token, body: { title: `task ${i} through pgbouncer`, priority: i % 2 ? 'high' : 'low', tags: [`t${i % 3}`] } }),
      ),
    );
    expect(created.map((r) => r.status)).toEqual(created.map(() => 201));
    const reads = await Promise.all(created.map((c) => call('GET', `/v1/tasks/${c.body!.id as string}`, { token })));
    expect(reads.map((r) => r.status)).toEqual(reads.map(() => 200));

    const first = created[0]!.body!;
    const patched = await call('PATCH', `/v1/tasks/${first.id as string}`, { token, body: { status: 'done' }, headers: { 'if-match': `"${String(first.version)}"` } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ status: 'done', version: 2 });
    const stale = await call('PATCH', `/v1/tasks/${first.id as string}`, { token, body: { title: 'x' }, headers: { 'if-match': '"1"' } });
    expect(stale.status).toBe(412);

    const filtered = await call('GET', '/v1/tasks?priority=high&tag=t1&sort=-createdAt&limit=5', { token });
    expect(filtered.status).toBe(200);
    const page = filtered.body!.data as { priority: string; tags: string[] }[];
    expect(page.length).toBeGreaterThan(0);
    for (const t of page) expect(t).toMatchObject({ priority: 'high', tags: ['t1'] });
    const search = await call('GET', '/v1/tasks?q=pgbouncer&limit=100', { token });
    expect((search.body!.data as unknown[]).length).toBe(40);

    const second = created[1]!.body!;
    expect((await call('DELETE', `/v1/tasks/${second.id as string}`, { token })).status).toBe(204);
    expect((await call('GET', `/v1/tasks/${second.id as string}`, { token })).status).toBe(404);

    expect((await call('PATCH', '/v1/users/me', { token, body: { name: 'Pat B' } })).body).toMatchObject({ name: 'Pat B' });
    const hook = await call('POST', '/v1/webhooks', { token, body: { url: 'http://127.0.0.1:9/hook', events: ['task.created'] } });
    expect(hook.status).toBe(201);
    expect((await call('GET', '/v1/webhooks', { token })).status).toBe(200);
    // The relay (a transaction with FOR UPDATE SKIP LOCKED) and the notifications consumer run through it too.
    let notes: Answer | undefined;
    for (let i = 0; i < 100; i++) {
      notes = await call('GET', '/v1/notifications?limit=100', { token });
      if ((notes.body?.data as unknown[] | undefined)?.length === 42) break; // 40 created, 1 completed, 1 deleted
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(notes!.status).toBe(200);
    expect((notes!.body!.data as unknown[]).length).toBe(42);

    // Every one of these went through PgBouncer: its statistics for the database count them.
    const stats = psql(pgbPort, 'SHOW STATS', 'pgbouncer')
      .split('\n')
      .map((l) => l.split('|'))
      .find((cols) => cols[0] === fx.db.name);
    expect(Number(stats?.[2])).toBeGreaterThan(100); // total_query_count
    // And nothing answered 500 on a missing prepared statement along the way.
    expect(server!.output()).not.toMatch(/prepared statement .* does not exist/);
  });

  it('answers 503 with Retry-After while PgBouncer is down, without hanging, and recovers by itself', async () => {
    expect(token).not.toBe('');
    await stopPgBouncer(bouncer!.pid, 'kill');
    bouncer = undefined;

    for (const [method, url, body] of [
      ['GET', '/v1/tasks', undefined],
      ['POST', '/v1/tasks', { title: 'during the outage' }],
      ['GET', '/v1/users/me', undefined],
      ['GET', '/v1/tasks', undefined],
    ] as const) {
      const res = await call(method, url, { token, body });
      expect(res.status, `${method} ${url}`).toBe(503);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(res.body).toMatchObject({ status: 503, type: 'urn:task-api:problem:service-unavailable' });
    }
    expect((await call('GET', '/health')).status).toBe(503);

    bouncer = await startPgBouncer(pgbOptions());
    // The pool reconnects on demand: the next requests succeed, the API was not restarted.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await call('GET', '/v1/tasks', { token })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    expect((await call('POST', '/v1/tasks', { token, body: { title: 'after the outage' } })).status).toBe(201);
    expect((await call('GET', '/health')).status).toBe(200);
    expect(server!.proc.exitCode).toBeNull();
  });

  it('statements without parameters are not pipelined ahead of others: a write position read beside queries never hangs', async () => {
    // What read-your-writes does after every write (src/infra/db/router.ts), on one client
    // connection so that postgres.js would pipeline; through PgBouncer 1.18 that hung for good.
    bouncer ??= await startPgBouncer(pgbOptions());
    const direct = new URL(fx.db.url);
    const database = await openDatabase({
      url: `postgres://${direct.username}@127.0.0.1:${pgbPort}/${fx.db.name}`,
      poolMax: 1,
      prepare: false,
      dataDir: '',
    });
    try {
      const round = () =>
        Promise.all([
          database.raw.query('select pg_current_wal_lsn()::text as lsn'),
          database.raw.query('select $1::int + 1 as n', [1]),
          database.raw.query('select 1 as one'),
          database.raw.query('select $1::text as t', ['x']),
        ]);
      const rounds = (async () => {
        for (let i = 0; i < 200; i++) expect((await round())[1]).toEqual([{ n: 2 }]);
        return 'answered' as const;
      })();
      const bound = new Promise<'hung'>((r) => setTimeout(() => r('hung'), REQUEST_BOUND_MS).unref());
      expect(await Promise.race([rounds, bound])).toBe('answered');
    } finally {
      await database.close();
    }
  });
});
