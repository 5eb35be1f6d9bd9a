// The built CLI with RabbitMQ: `serve` relays the events of its writes (and exports the outbox
// metrics); `worker` publishes what is pending with no HTTP at all; both stop cleanly on SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testPrivateKey } from '../helpers/app.js';
import { deleteExchange, readExchange, testExchange } from '../helpers/amqp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { jsonRequest, startServer, startWorker } from '../helpers/process.js';
import { AMQP_URL } from '../helpers/amqp.js';
import { REDIS_URL } from '../setup/services.js';


describe('events in the built CLI', () => {
  let db: TestDatabase;
  const exchange = testExchange();
  let env: Record<string, string>;
  beforeAll(async () => {
    db = await createTestDatabase();
    env = {
      DATABASE_URL: db.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: `${exchange}:`,
      JWT_PRIVATE_KEY: testPrivateKey(),
      RATE_LIMIT_ENABLED: 'false',
      AMQP_URL,
      AMQP_EXCHANGE: exchange,
      OUTBOX_POLL_MS: '50',
    };
  });
  afterAll(async () => {
    // serve and worker also start the registered consumers (src/events/consumers.ts):
    // their queues and dead-letter exchange are named after this test's exchange.
    const consumerQueues = ['notifications', 'notifications-accounts', 'tasks-accounts'].flatMap((n) => [`${exchange}.${n}`, `${exchange}.${n}.dead`]);
    await deleteExchange(exchange, AMQP_URL, consumerQueues).catch(() => undefined);
    await deleteExchange(`${exchange}.dead`).catch(() => undefined);
    await db.drop();
  });

  it('serve publishes the events of its writes, reports them in /metrics, and exits 0 on SIGTERM', async () => {
    const reader = await readExchange(exchange);
    const server = await startServer(env);
    try {
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: `ev-${Date.now()}@example.test`, password: 'correct horse battery' });
      const token = reg.body!.accessToken as string;
      const task = await jsonRequest(`${server.url}/v1/tasks`, 'POST', { title: 'from serve' }, token);
      expect(task.status).toBe(201);
      // The sign-up's account event, then the task's.
      await reader.waitFor(2);
      expect(reader.messages.map((m) => String(m.properties.type))).toEqual(['user.created', 'task.created']);
      expect((JSON.parse(reader.messages[1]!.content.toString()) as { taskId: string }).taskId).toBe(task.body!.id);
      // The consumer may read the event before the relay has its broker's confirm and marks the
      // row sent: the outbox is empty soon after, not at once.
      const scrape = async () => (await fetch(server.metricsUrl)).text();
      await expect.poll(scrape, { timeout: 20_000, interval: 200 }).toMatch(/^outbox_pending\{service="task-api"\} 0$/m);
      const metrics = await scrape();
      expect(metrics).toMatch(/^events_published_total\{type="task.created",service="task-api"\} 1$/m);
      expect(metrics).toMatch(/^outbox_oldest_pending_age_seconds\{service="task-api"\} 0$/m);
      expect(metrics).toMatch(/^events_publish_failures_total\{service="task-api"\} 0$/m);
    } finally {
      expect(await server.kill('SIGTERM')).toBe(0);
      await reader.close();
    }
  });

  it('worker publishes events written while no relay ran, and exits 0 on SIGTERM', async () => {
    // A server without a relay writes; a worker publishes.
    const server = await startServer({ ...env, OUTBOX_RELAY_ENABLED: 'false' });
    const reader = await readExchange(exchange);
    try {
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: `wk-${Date.now()}@example.test`, password: 'correct horse battery' });
      const token = reg.body!.accessToken as string;
      for (let i = 0; i < 3; i++) expect((await jsonRequest(`${server.url}/v1/tasks`, 'POST', { title: `w${i}` }, token)).status).toBe(201);
    } finally {
      expect(await server.kill('SIGTERM')).toBe(0);
    }
    expect(reader.messages).toHaveLength(0);
    const worker = await startWorker(env);
    try {
      await reader.waitFor(4, 600);
      expect(reader.messages.map((m) => String(m.properties.type)), worker.output()).toEqual(['user.created', 'task.created', 'task.created', 'task.created']);
    } finally {
      worker.proc.kill('SIGTERM');
      expect((await worker.exited).code, worker.output()).toBe(0);
      await reader.close();
    }
    expect(worker.output()).toMatch(/"msg":"events started"/);
    expect(worker.output()).toMatch(/"msg":"stopped"/);
  });
});
