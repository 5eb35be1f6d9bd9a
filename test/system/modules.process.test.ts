// One codebase, several services: `task-api serve --modules ...` as separate processes over one
// PostgreSQL and Redis, sharing the signing key. Each serves only its modules' routes; task events
// written by the tasks service reach the notifications service through the outbox, with the
// in-process bus (no broker: the in-process bus delivers only to consumers in its own process, so
// a `task-api worker`, which runs every consumer, relays) and with RabbitMQ (the processes that
// write events relay, the notifications process consumes its queue).
import { afterAll, describe, expect, it } from 'vitest';
import { testPrivateKey } from '../helpers/app.js';
import { AMQP_URL, deleteExchange, testExchange } from '../helpers/amqp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { jsonRequest, runCli, startServer, startWorker, type CliProcess, type ServerProcess } from '../helpers/process.js';
import { REDIS_URL } from '../setup/services.js';

const started: ServerProcess[] = [];
const workers: CliProcess[] = [];
const databases: TestDatabase[] = [];
const exchanges: string[] = [];

afterAll(async () => {
  for (const s of started) await s.kill('SIGTERM');
  for (const w of workers) {
    w.proc.kill('SIGTERM');
    await w.exited;
  }
  for (const ex of exchanges) {
    const queues = ['notifications', 'notifications-accounts', 'tasks-accounts'].flatMap((q) => [`${ex}.${q}`, `${ex}.${q}.dead`]);
    await deleteExchange(ex, AMQP_URL, queues).catch(() => undefined);
    await deleteExchange(`${ex}.dead`).catch(() => undefined);
  }
  for (const db of databases) await db.drop();
});

async function service(env: Record<string, string>, modules: string): Promise<ServerProcess> {
  const s = await startServer(env, ['--modules', modules]);
  started.push(s);
  return s;
}

async function status(url: string, token?: string): Promise<number> {
  return (await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })).status;
}

describe.each([
  ['the in-process bus', false],
  ['RabbitMQ', true],
] as const)('split services with %s', (_name, broker) => {
  it('auth+users, tasks and notifications each serve their own routes; a task written on one becomes a notification on another', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const exchange = testExchange();
    exchanges.push(exchange);
    const env: Record<string, string> = {
      DATABASE_URL: db.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: `${exchange}:`,
      JWT_PRIVATE_KEY: testPrivateKey(),
      RATE_LIMIT_ENABLED: 'false',
      OUTBOX_POLL_MS: '50',
      SHUTDOWN_DRAIN_MS: '0',
      ...(broker ? { AMQP_URL, AMQP_EXCHANGE: exchange } : {}),
    };
    const [identity, tasks, notifications] = await Promise.all([
      service(env, 'auth,users'),
      service(env, 'tasks'),
      service(env, 'notifications'),
    ]);
    if (!broker) workers.push(await startWorker(env));

    const reg = await jsonRequest(`${identity.url}/v1/auth/register`, 'POST', { email: `split-${Date.now()}@example.test`, password: 'correct horse battery' });
    expect(reg.status).toBe(201);
    const token = reg.body!.accessToken as string;

    // Each service answers for its own routes only; a token from the auth service works on all.
    expect(await status(`${identity.url}/v1/users/me`, token)).toBe(200);
    expect(await status(`${identity.url}/v1/tasks`, token)).toBe(404);
    expect(await status(`${identity.url}/v1/notifications`, token)).toBe(404);
    expect(await status(`${tasks.url}/v1/tasks`, token)).toBe(200);
    expect(await status(`${tasks.url}/v1/users/me`, token)).toBe(404);
    expect((await jsonRequest(`${tasks.url}/v1/auth/login`, 'POST', { email: 'x@example.test', password: 'whatever123' }, token)).status).toBe(404);
    expect(await status(`${notifications.url}/v1/notifications`, token)).toBe(200);
    expect(await status(`${notifications.url}/v1/tasks`, token)).toBe(404);
    for (const s of [identity, tasks, notifications]) expect(await status(`${s.url}/health`)).toBe(200);

    const task = await jsonRequest(`${tasks.url}/v1/tasks`, 'POST', { title: 'written on the tasks service' }, token);
    expect(task.status).toBe(201);
    let list: { data: { type: string; taskId: string }[] } = { data: [] };
    for (let i = 0; i < 300 && list.data.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      list = (await jsonRequest(`${notifications.url}/v1/notifications`, 'GET', undefined, token)).body as typeof list;
    }
    expect(list.data).toEqual([expect.objectContaining({ type: 'task.created', taskId: task.body!.id })]);

    // Who relayed: with RabbitMQ a process that writes events (auth+users or tasks: they share
    // this database's outbox here), never the notifications process; with the in-process bus none
    // of the services (the worker did).
    const published = async (s: ServerProcess) => {
      const m = /^events_published_total\{type="task.created",service="task-api"\} (\d+)$/m.exec(await (await fetch(s.metricsUrl)).text());
      return Number(m?.[1] ?? 0);
    };
    expect((await published(identity)) + (await published(tasks))).toBe(broker ? 1 : 0);
    expect(await published(notifications)).toBe(0);
  });
});

it('serve refuses an unknown module, naming it', async () => {
  const res = await runCli(['serve', '--modules', 'auth,billing'], {});
  expect(res.code).toBe(2);
  expect(res.stderr).toContain('unknown module "billing"');
});
