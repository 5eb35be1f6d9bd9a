// `task-api cluster start --split`: the services of "microservices from the same code" on one
// machine, started once for this file in a temporary directory: auth, users, tasks and
// notifications (`serve --modules <m>`, two instances each) behind the NGINX gateway, over one
// PostgreSQL (primary + replica, PgBouncer), Redis and RabbitMQ. The API's contract is walked
// through the gateway unchanged; a task written on the tasks service becomes a notification on
// the notifications service; with a service's instances all down, the others keep working.
// Whatever happens, afterAll stops every recorded pid (cluster stop, then SIGKILL).
import { describe, expect, it } from 'vitest';
import { isAlive, waitUntil } from '../../src/operations/cluster/processes.js';
import { uniqueEmail } from '../helpers/app.js';
import { jsonRequest } from '../helpers/process.js';
import { clusterFixture, expectNginxAccepts, walkContract, HIGH_LIMITS_ENV, type Brief } from '../helpers/cluster.js';

const ENV = { ...HIGH_LIMITS_ENV, OUTBOX_POLL_MS: '100' };

interface Status {
  topology: string;
  publicUrl: string;
  allAlive: boolean;
  nginx: Brief;
  instances: (Brief & { service: string; metricsUrl: string })[];
  primary: Brief;
  processes: (Brief & { port: number; role: string; service?: string })[];
}

const fx = clusterFixture<Status>('task-api-split-', ['--split', '--replicas', '1'], ENV);
const { cluster, status } = fx;
async function control(action: 'kill' | 'start-one', ...names: string[]): Promise<void> {
  for (const name of names) {
    const res = await cluster(action, name);
    expect(res.code, res.stderr).toBe(0);
  }
}

/** A new user, registered through the gateway (on the auth service): their access token. */
async function user(): Promise<string> {
  const reg = await jsonRequest(`${fx.started().publicUrl}/v1/auth/register`, 'POST', { email: uniqueEmail('split'), password: 'correct horse battery' });
  expect(reg.status).toBe(201);
  return reg.body!.accessToken as string;
}

type Notifications = { data: { type: string; taskId: string }[] };
const notificationsOf = async (token: string) => (await jsonRequest(`${fx.started().publicUrl}/v1/notifications`, 'GET', undefined, token)).body as Notifications;

/** Polls the notifications service (through the gateway) until the task's notification is there. */
async function waitForNotification(token: string, taskId: string): Promise<void> {
  await waitUntil(`a notification for task ${taskId}`, async () => (await notificationsOf(token)).data?.some((n) => n.taskId === taskId) ?? false, 60_000);
}

describe('task-api cluster start --split', () => {
  it('runs two instances of each service behind the gateway; status names the service of every instance', async () => {
    const s = await status();
    expect(s).toEqual(fx.started());
    expect(s.allAlive).toBe(true);
    expect(s.topology).toBe('split');
    expect(s.instances.map((i) => `${i.name}:${i.service}`).sort()).toEqual(
      ['auth', 'users', 'tasks', 'notifications'].flatMap((m) => [`${m}-1:${m}`, `${m}-2:${m}`]).sort(),
    );
    // primary, replica, PgBouncer, Redis, RabbitMQ, 8 instances, NGINX, Prometheus.
    expect(s.processes).toHaveLength(15);
    for (const p of s.processes) expect(p.pid !== null && isAlive(p.pid), p.name).toBe(true);
  });

  it('nginx -t accepts the gateway it runs with', () => {
    expectNginxAccepts(fx.dir());
  });

  it("holds the API's contract through the gateway, unchanged", async () => {
    await walkContract(fx.started().publicUrl, fx.started().primary.url);
  });

  it('serves the whole API as /openapi.json through the gateway', async () => {
    const doc = (await (await fetch(`${fx.started().publicUrl}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    for (const p of ['/v1/auth/login', '/v1/users/me', '/v1/tasks', '/v1/notifications', '/v1/webhooks']) expect(Object.keys(doc.paths)).toContain(p);
    expect((await fetch(`${fx.started().publicUrl}/docs`)).status).toBe(200);
  });

  it('a task written on the tasks service becomes a notification on the notifications service', async () => {
    const token = await user();
    const task = await jsonRequest(`${fx.started().publicUrl}/v1/tasks`, 'POST', { title: 'through the gateway' }, token);
    expect(task.status).toBe(201);
    await waitForNotification(token, task.body!.id as string);
    expect((await notificationsOf(token)).data).toEqual([expect.objectContaining({ type: 'task.created', taskId: task.body!.id })]);
  });

  it('with the notifications instances down, task writes keep working; the events arrive once they are back', async () => {
    const token = await user();
    await control('kill', 'notifications-1', 'notifications-2');
    const task = await jsonRequest(`${fx.started().publicUrl}/v1/tasks`, 'POST', { title: 'while notifications is down' }, token);
    expect(task.status).toBe(201);
    expect((await jsonRequest(`${fx.started().publicUrl}/v1/tasks/${task.body!.id as string}`, 'GET', undefined, token)).status).toBe(200);
    await control('start-one', 'notifications-1', 'notifications-2');
    await waitForNotification(token, task.body!.id as string);
  });

  it('with the auth instances down, valid tokens keep working on tasks; login answers 503 with Retry-After', async () => {
    const token = await user();
    await control('kill', 'auth-1', 'auth-2');
    try {
      expect((await jsonRequest(`${fx.started().publicUrl}/v1/tasks`, 'GET', undefined, token)).status).toBe(200);
      expect((await jsonRequest(`${fx.started().publicUrl}/v1/tasks`, 'POST', { title: 'while auth is down' }, token)).status).toBe(201);
      expect((await jsonRequest(`${fx.started().publicUrl}/v1/users/me`, 'GET', undefined, token)).status).toBe(200);
      const login = await fetch(`${fx.started().publicUrl}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'someone@example.test', password: 'correct horse battery' }),
      });
      expect(login.status).toBe(503);
      expect(login.headers.get('retry-after')).toBe('5');
      expect(login.headers.get('content-type')).toBe('application/problem+json');
      expect(await login.json()).toMatchObject({ type: 'urn:task-api:problem:service-unavailable', status: 503 });
    } finally {
      await control('start-one', 'auth-1', 'auth-2');
    }
    expect((await status()).allAlive).toBe(true);
  });

  it('stop ends every recorded process and frees its ports', async () => {
    await fx.stopAndCheck();
  });
});
