// `task-api cluster start --split`: the services of "microservices from the same code" on one
// machine, started once for this file in a temporary directory: auth, users, tasks and
// notifications (`serve --modules <m>`, two instances each) behind the NGINX gateway, over one
// PostgreSQL (primary + replica, PgBouncer), Redis and RabbitMQ. The API's contract is walked
// through the gateway unchanged; a task written on the tasks service becomes a notification on
// the notifications service; with a service's instances all down, the others keep working; every
// series of a service's metrics carries its name (service="task-api-<module>").
// Whatever happens, afterAll stops every recorded pid (cluster stop, then SIGKILL).
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgUrl } from '../../src/operations/cluster/postgres.js';
import { isAlive, waitUntil } from '../../src/operations/cluster/processes.js';
import { uniqueEmail } from '../helpers/app.js';
import { jsonRequest, runScript } from '../helpers/process.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/receivers.js';
import { clusterFixture, expectNginxAccepts, walkContract, HIGH_LIMITS_ENV, type Brief } from '../helpers/cluster.js';

const ENV = { ...HIGH_LIMITS_ENV, OUTBOX_POLL_MS: '100', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };

interface Status {
  topology: string;
  publicUrl: string;
  allAlive: boolean;
  nginx: Brief;
  instances: (Brief & { service: string; metricsUrl: string })[];
  primary: Brief & { port?: number };
  databases: Record<'auth' | 'users' | 'tasks' | 'notifications', string>;
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

/** A query on one service's database, on the primary (not through PgBouncer). */
async function sql<T extends Record<string, unknown>>(service: keyof Status['databases'], text: string, params: (string | number)[] = []): Promise<T[]> {
  const s = fx.started();
  const primary = s.processes.find((p) => p.name === 'primary')!;
  const db = postgres(pgUrl(primary.port, s.databases[service]), { max: 1, onnotice: () => undefined });
  try {
    return (await db.unsafe(text, params)) as unknown as T[];
  } finally {
    await db.end();
  }
}
const countOf = async (service: keyof Status['databases'], table: string, userId: string) =>
  Number((await sql<{ n: number }>(service, `select count(*)::int as n from ${table} where user_id = $1`, [userId]))[0]!.n);

/** Records the webhook deliveries (a loopback receiver). */
let hooks: WebhookReceiver;
let hookUrl = '';
beforeAll(async () => {
  hooks = await startWebhookReceiver();
  hookUrl = `${hooks.url}/hook`;
});
afterAll(() => hooks?.close());
const received = () => hooks.received;

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
    const s = fx.started();
    const primary = s.processes.find((p) => p.name === 'primary')!;
    await walkContract(s.publicUrl, pgUrl(primary.port, s.databases.users), pgUrl(primary.port, s.databases.tasks));
  });

  it('each service owns its database: auth and users the identity one, tasks and notifications their own', async () => {
    const s = fx.started();
    expect(s.databases).toEqual({ auth: 'task_api_identity', users: 'task_api_identity', tasks: 'task_api_tasks', notifications: 'task_api_notifications' });
    const token = await user();
    const task = await jsonRequest(`${s.publicUrl}/v1/tasks`, 'POST', { title: 'whose database?' }, token);
    expect(task.status).toBe(201);
    await waitForNotification(token, task.body!.id as string);
    const rows = async (service: keyof Status['databases'], table: string) => Number((await sql<{ n: number }>(service, `select count(*)::int as n from ${table}`))[0]!.n);
    // What each holds of its own, and nothing of another's (every database has every table).
    expect(await rows('users', 'users')).toBeGreaterThan(0);
    for (const table of ['tasks', 'notifications', 'webhooks', 'task_owners', 'notification_recipients']) expect(await rows('users', table), `identity: ${table}`).toBe(0);
    expect(await rows('tasks', 'tasks')).toBeGreaterThan(0);
    expect(await rows('tasks', 'task_owners')).toBeGreaterThan(0);
    for (const table of ['users', 'signing_keys', 'notifications', 'notification_recipients']) expect(await rows('tasks', table), `tasks: ${table}`).toBe(0);
    expect(await rows('notifications', 'notifications')).toBeGreaterThan(0);
    expect(await rows('notifications', 'notification_recipients')).toBeGreaterThan(0);
    for (const table of ['users', 'signing_keys', 'tasks', 'task_owners']) expect(await rows('notifications', table), `notifications: ${table}`).toBe(0);
    // Only the auth service holds the signing key; the others verify with its JWKS.
    const state = JSON.parse(await (await import('node:fs/promises')).readFile(`${fx.dir()}/state.json`, 'utf8')) as {
      processes: { name: string; service?: string; start: { env?: Record<string, string> } }[];
    };
    for (const p of state.processes.filter((x) => x.service)) {
      expect(p.start.env?.JWT_PRIVATE_KEY !== undefined, p.name).toBe(p.service === 'auth');
      expect(p.start.env?.AUTH_JWKS_URL !== undefined, p.name).toBe(p.service !== 'auth');
    }
  });

  it('a task created on the tasks service becomes a signed webhook delivery from the notifications service', async () => {
    const s = fx.started();
    const token = await user();
    const secret = 'split-webhook-secret-0123456789';
    const hook = await jsonRequest(`${s.publicUrl}/v1/webhooks`, 'POST', { url: hookUrl, events: ['task.created'], secret }, token);
    expect(hook.status, JSON.stringify(hook.body)).toBe(201);
    const task = await jsonRequest(`${s.publicUrl}/v1/tasks`, 'POST', { title: 'delivered by webhook' }, token);
    expect(task.status).toBe(201);
    const taskId = task.body!.id as string;
    const mine = () => received().find((r) => r.body.includes(taskId));
    await waitUntil('the webhook delivery of the task', async () => mine() !== undefined, 60_000);
    const delivery = mine()!;
    const { event } = JSON.parse(delivery.body) as { event: { type: string; taskId: string; data: { task: { title: string } } } };
    expect(event).toMatchObject({ type: 'task.created', taskId, data: { task: { title: 'delivered by webhook' } } });
    const timestamp = String(delivery.headers['webhook-timestamp'] ?? '');
    expect(delivery.headers['webhook-signature']).toBe(`v1=${createHmac('sha256', secret).update(`${timestamp}.${delivery.body}`).digest('hex')}`);
  });

  it("deleting an account deletes its tasks, notifications and webhooks in every service, eventually, even with notifications down meanwhile", async () => {
    const s = fx.started();
    const email = uniqueEmail('gone');
    const reg = await jsonRequest(`${s.publicUrl}/v1/auth/register`, 'POST', { email, password: 'correct horse battery' });
    expect(reg.status).toBe(201);
    const token = reg.body!.accessToken as string;
    const userId = (reg.body!.user as { id: string }).id;
    const hook = await jsonRequest(`${s.publicUrl}/v1/webhooks`, 'POST', { url: `${hookUrl}/gone`, events: ['task.created'] }, token);
    expect(hook.status).toBe(201);
    const tasks: string[] = [];
    for (const title of ['one', 'two', 'three']) {
      const res = await jsonRequest(`${s.publicUrl}/v1/tasks`, 'POST', { title }, token);
      expect(res.status).toBe(201);
      tasks.push(res.body!.id as string);
    }
    await waitForNotification(token, tasks[2]!);
    expect(await countOf('tasks', 'tasks', userId)).toBe(3);
    expect(await countOf('notifications', 'webhooks', userId)).toBe(1);

    await control('kill', 'notifications-1', 'notifications-2');
    try {
      expect((await jsonRequest(`${s.publicUrl}/v1/users/me`, 'DELETE', undefined, token)).status).toBe(204);
      // The tasks service applies user.deleted: the tasks go, and the token is refused there.
      await waitUntil('the tasks of the deleted account gone', async () => (await countOf('tasks', 'tasks', userId)) === 0, 60_000);
      const refused = await jsonRequest(`${s.publicUrl}/v1/tasks`, 'POST', { title: 'after deletion' }, token);
      expect(refused.status).toBe(401);
      expect(await countOf('tasks', 'tasks', userId)).toBe(0);
      // Notifications is down: its rows wait for it (the event waits in its queue).
      expect(await countOf('notifications', 'webhooks', userId)).toBe(1);
      expect(await countOf('notifications', 'notifications', userId)).toBe(3);
    } finally {
      await control('start-one', 'notifications-1', 'notifications-2');
    }
    await waitUntil(
      'the notifications data of the deleted account gone',
      async () => (await countOf('notifications', 'webhooks', userId)) + (await countOf('notifications', 'notifications', userId)) === 0,
      60_000,
    );
    expect(await countOf('notifications', 'notification_preferences', userId)).toBe(0);
    expect((await sql<{ n: number }>('notifications', 'select count(*)::int as n from webhook_deliveries d join webhooks w on w.id = d.webhook_id where w.user_id = $1', [userId]))[0]!.n).toBe(0);
    expect((await sql<{ n: number }>('users', 'select count(*)::int as n from users where id = $1', [userId]))[0]!.n).toBe(0);
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

  it('each service names itself in its metrics: every series of its instances carries service="task-api-<service>"', async () => {
    const s = await status();
    expect(new Set(s.instances.map((i) => i.service))).toEqual(new Set(['auth', 'users', 'tasks', 'notifications']));
    for (const i of s.instances) {
      const series = (await (await fetch(i.metricsUrl)).text()).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(series.length, i.name).toBeGreaterThan(10);
      for (const line of series) expect(line, i.name).toContain(`service="task-api-${i.service}"`);
    }
  });

  it('npm run loadtest passes unchanged through the gateway (--cluster): every threshold held', async () => {
    const out = path.join(fx.dir(), 'loadtest.json');
    const res = await runScript('build/loadtest/run.js', ['--smoke', '--cluster', fx.dir(), '--out', out, '--quiet']);
    expect(res.code, res.stderr.slice(-2000)).toBe(0);
    const report = JSON.parse(readFileSync(out, 'utf8')) as { target: { url: string } };
    expect(report.target.url).toBe(fx.started().publicUrl);
  }, 120_000);

  it('stop ends every recorded process and frees its ports', async () => {
    await fx.stopAndCheck();
  });
});
