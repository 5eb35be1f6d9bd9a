// The built server as a real process: sockets, JSON logs, SIGTERM draining, exit codes, and
// the embedded default keeping its data across restarts.
import { describe, expect, it } from 'vitest';
import { uniqueEmail } from '../helpers/app.js';
import { jsonRequest, runCli, startServer } from '../helpers/process.js';
import { serverFixture, servicesEnv } from '../helpers/server-fixture.js';

const fixture = serverFixture('task-api-test-');

describe('task-api serve on PostgreSQL and Redis', () => {
  it('serves over a socket, logs JSON without secrets, drains on SIGTERM and exits 0', async () => {
    const adminEmail = uniqueEmail('boot-admin');
    const server = await startServer({
      ...servicesEnv(fixture.db),
      MIGRATE_ON_START: 'true',
      SHUTDOWN_DRAIN_MS: '1500',
      // A dozen requests by one user within a second: above the default 10/s rate limit.
      RATE_LIMIT_POINTS: '1000',
      ADMIN_EMAIL: adminEmail,
      ADMIN_PASSWORD: 'admin password 9',
      DATA_DIR: fixture.dir,
    });
    try {
      const password = 'socket password';
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: uniqueEmail('socket'), password });
      expect(reg.status).toBe(201);
      const token = reg.body!.accessToken as string;
      const created = await jsonRequest(`${server.url}/v1/tasks`, 'POST', { title: 'over a socket' }, token);
      expect(created.status).toBe(201);
      expect(created.headers.get('location')).toBe(`/v1/tasks/${created.body!.id as string}`);
      const list = await jsonRequest(`${server.url}/v1/tasks`, 'GET', undefined, token);
      expect((list.body!.data as unknown[]).length).toBe(1);
      const admin = await jsonRequest(`${server.url}/v1/auth/login`, 'POST', { email: adminEmail, password: 'admin password 9' });
      expect((admin.body!.user as { role: string }).role).toBe('admin');
      expect((await jsonRequest(`${server.url}/health`, 'GET')).status).toBe(200);

      // SIGTERM: readiness turns 503 while requests are still answered during the drain delay.
      const inFlight = Array.from({ length: 10 }, () => jsonRequest(`${server.url}/v1/tasks`, 'GET', undefined, token));
      server.proc.kill('SIGTERM');
      let sawDraining = false;
      for (let i = 0; i < 20 && !sawDraining; i++) {
        const h = await jsonRequest(`${server.url}/health`, 'GET');
        sawDraining = h.status === 503 && h.body!.draining === true;
        if (!sawDraining) await new Promise((r) => setTimeout(r, 50));
      }
      expect(sawDraining).toBe(true);
      const duringDrain = await jsonRequest(`${server.url}/v1/tasks`, 'GET', undefined, token);
      expect(duringDrain.status).toBe(200);
      // Answered, and its connection closed: a load balancer keeps no connection to a draining instance.
      expect(duringDrain.headers.get('connection')).toBe('close');
      expect((await Promise.all(inFlight)).map((r) => r.status)).toEqual(Array(10).fill(200));
      expect(await server.exited).toBe(0);
      await expect(fetch(`${server.url}/health/live`)).rejects.toThrow();

      const logs = server.logs();
      expect(logs.length).toBeGreaterThan(3);
      for (const l of logs) expect(l).toMatchObject({ service: 'task-api', environment: 'production' });
      expect(logs.some((l) => l.msg === 'stopped')).toBe(true);
      const text = server.output();
      expect(text).not.toContain(password);
      expect(text).not.toContain(token);
      expect(text).not.toContain(reg.body!.refreshToken as string);
    } finally {
      await server.kill('SIGKILL');
    }
  });
});

describe('task-api serve with nothing configured (embedded)', () => {
  it('starts on PGlite under DATA_DIR and keeps users, tasks and the signing key across restarts', async () => {
    const env = { DATA_DIR: fixture.dir, NODE_ENV: 'development' };
    const first = await startServer(env);
    const email = uniqueEmail('embedded');
    let token: string;
    try {
      const reg = await jsonRequest(`${first.url}/v1/auth/register`, 'POST', { email, password: 'embedded password' });
      expect(reg.status).toBe(201);
      token = reg.body!.accessToken as string;
      expect((await jsonRequest(`${first.url}/v1/tasks`, 'POST', { title: 'survives restarts' }, token)).status).toBe(201);
      expect(first.output()).toContain('embedded PostgreSQL');
      expect(await first.kill('SIGTERM')).toBe(0);
    } finally {
      await first.kill('SIGKILL');
    }
    const second = await startServer(env);
    try {
      const list = await jsonRequest(`${second.url}/v1/tasks`, 'GET', undefined, token);
      expect(list.status).toBe(200);
      expect((list.body!.data as { title: string }[]).map((t) => t.title)).toEqual(['survives restarts']);
      expect((await jsonRequest(`${second.url}/v1/auth/login`, 'POST', { email, password: 'embedded password' })).status).toBe(200);
      expect(await second.kill('SIGTERM')).toBe(0);
    } finally {
      await second.kill('SIGKILL');
    }
  });
});

describe('task-api commands', () => {
  it('migrate reports an up-to-date database; create-admin reads the password from stdin', async () => {
    const migrated = await runCli(['migrate'], { DATABASE_URL: fixture.db.url });
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toContain('up to date');
    const email = uniqueEmail('cli-admin');
    const created = await runCli(['create-admin', email], { DATABASE_URL: fixture.db.url }, 'cli admin password\n');
    expect(created.stderr).toBe('');
    expect(created.stdout).toContain('created');
    const again = await runCli(['create-admin', email], { DATABASE_URL: fixture.db.url }, 'cli admin password\n');
    expect(again.stdout).toContain('unchanged');
    const short = await runCli(['create-admin', uniqueEmail('x')], { DATABASE_URL: fixture.db.url }, 'short\n');
    expect(short.code).toBe(2);
  });

  it('a bad configuration stops start-up with a message naming the variable', async () => {
    const res = await runCli(['serve'], { PORT: 'eighty', DATABASE_POOL_MAX: '0' });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('PORT');
    expect(res.stderr).toContain('DATABASE_POOL_MAX');
  });
});
