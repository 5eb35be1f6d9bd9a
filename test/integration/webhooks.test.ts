import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotificationsConsumer } from '../../src/modules/notifications/handler.js';
import { startDeliveryWorker } from '../../src/modules/notifications/worker.js';
import { isPrivateAddress } from '../../src/modules/notifications/targets.js';
import { verify } from '../../src/modules/notifications/signature.js';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody } from '../helpers/bodies.js';
import { taskEvent } from '../helpers/events.js';

interface WebhookBody {
  id: string;
  url: string;
  events: string[];
  active: boolean;
  createdAt: string;
  updatedAt: string;
  secret?: string;
}
interface DeliveryBody {
  id: string;
  webhookId: string;
  eventId: string;
  attempt: number;
  status: 'pending' | 'succeeded' | 'failed';
  responseStatus: number | null;
  error: string | null;
}

// Loopback targets are private: this app allows them, as a development setup would.
let t: TestApp;
let alice: SessionBody;
let bob: SessionBody;

beforeAll(async () => {
  t = await createTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_BACKOFF_BASE_MS: '1', WEBHOOK_MAX_ATTEMPTS: '5', WEBHOOK_TIMEOUT_MS: '2000' } });
  alice = await register(t.app);
  bob = await register(t.app);
});
afterAll(() => t.close());

const TARGET = 'http://127.0.0.1:9/hook';

describe('webhooks API', () => {
  it('creates (secret generated and shown once), reads, lists, updates and deletes', async () => {
    const req = as(t.app, alice.accessToken);
    const created = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: TARGET, events: ['task.created', 'task.completed'] } });
    expect(created.statusCode, created.body).toBe(201);
    const hook = created.json<WebhookBody>();
    expect(hook).toMatchObject({ url: TARGET, events: ['task.created', 'task.completed'], active: true });
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.headers.location).toBe(`/v1/webhooks/${hook.id}`);

    const got = (await req({ method: 'GET', url: `/v1/webhooks/${hook.id}` })).json<WebhookBody>();
    expect(got.secret).toBeUndefined();
    expect(got).toMatchObject({ id: hook.id, url: TARGET });

    const mine = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/other', events: ['task.deleted'], secret: 'my-own-secret-0123456789' } });
    expect(mine.json<WebhookBody>().secret).toBe('my-own-secret-0123456789');
    const list = (await req({ method: 'GET', url: '/v1/webhooks?limit=1' })).json<PageBody<WebhookBody>>();
    expect(list.data).toHaveLength(1);
    const rest = (await req({ method: 'GET', url: `/v1/webhooks?limit=1&cursor=${list.nextCursor}` })).json<PageBody<WebhookBody>>();
    expect([...list.data, ...rest.data].map((w) => w.id).sort()).toEqual([hook.id, mine.json<WebhookBody>().id].sort());

    const patched = await req({ method: 'PATCH', url: `/v1/webhooks/${hook.id}`, payload: { active: false, events: ['task.updated'] } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json<WebhookBody>()).toMatchObject({ active: false, events: ['task.updated'], url: TARGET });

    expect((await req({ method: 'DELETE', url: `/v1/webhooks/${hook.id}` })).statusCode).toBe(204);
    expect((await req({ method: 'GET', url: `/v1/webhooks/${hook.id}` })).statusCode).toBe(404);
    expect((await req({ method: 'DELETE', url: `/v1/webhooks/${hook.id}` })).statusCode).toBe(404);
  });

  it('validation errors name the field', async () => {
    const req = as(t.app, alice.accessToken);
    const cases: [unknown, string][] = [
      [{ events: ['task.created'] }, 'url'],
      [{ url: 'ftp://example.com/x', events: ['task.created'] }, 'url'],
      [{ url: 'not a url', events: ['task.created'] }, 'url'],
      [{ url: TARGET }, 'events'],
      [{ url: TARGET, events: [] }, 'events'],
      [{ url: TARGET, events: ['task.exploded'] }, 'events.0'],
      [{ url: TARGET, events: ['task.created', 'task.created'] }, 'events'],
      [{ url: TARGET, events: ['task.created'], secret: 'short' }, 'secret'],
      [{ url: TARGET, events: ['task.created'], extra: 1 }, 'extra'],
    ];
    for (const [payload, field] of cases) {
      const res = await req({ method: 'POST', url: '/v1/webhooks', payload: payload as object });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json<ProblemBody>().errors?.map((e) => e.field), JSON.stringify(payload)).toContain(field);
    }
    const hook = (await req({ method: 'POST', url: '/v1/webhooks', payload: { url: TARGET, events: ['task.created'] } })).json<WebhookBody>();
    const bad = await req({ method: 'PATCH', url: `/v1/webhooks/${hook.id}`, payload: { url: 'gopher://x' } });
    expect(bad.json<ProblemBody>().errors?.map((e) => e.field)).toContain('url');
    expect((await req({ method: 'PATCH', url: `/v1/webhooks/${hook.id}`, payload: {} })).statusCode).toBe(400);
  });

  it("another user's webhook and its deliveries are 404s (BOLA)", async () => {
    const hook = (await as(t.app, alice.accessToken)({ method: 'POST', url: '/v1/webhooks', payload: { url: `${TARGET}/bola`, events: ['task.created'] } })).json<WebhookBody>();
    const byBob = as(t.app, bob.accessToken);
    const any = '01900000-0000-7000-8000-000000000000';
    for (const [method, url, payload] of [
      ['GET', `/v1/webhooks/${hook.id}`],
      ['PATCH', `/v1/webhooks/${hook.id}`, { active: false }],
      ['DELETE', `/v1/webhooks/${hook.id}`],
      ['GET', `/v1/webhooks/${hook.id}/deliveries`],
      ['POST', `/v1/webhooks/${hook.id}/deliveries/${any}/redeliver`],
    ] as const) {
      const res = await byBob({ method, url, ...(payload ? { payload } : {}) });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await byBob({ method: 'GET', url: '/v1/webhooks' })).json<PageBody<WebhookBody>>().data.map((w) => w.id)).not.toContain(hook.id);
    expect((await as(t.app, alice.accessToken)({ method: 'GET', url: `/v1/webhooks/${hook.id}` })).json<WebhookBody>().active).toBe(true);
  });
});

describe('private targets', () => {
  let strict: TestApp;
  beforeAll(async () => {
    strict = await createTestApp(); // WEBHOOK_ALLOW_PRIVATE_TARGETS unset
  });
  afterAll(() => strict.close());

  it('refuses loopback, private and link-local targets by default, naming url', async () => {
    const s = await register(strict.app);
    const req = as(strict.app, s.accessToken);
    for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x', 'http://10.1.2.3/x', 'http://169.254.169.254/latest', 'http://[::1]/x', 'http://192.168.0.1/x', 'http://[::ffff:127.0.0.1]/x']) {
      const res = await req({ method: 'POST', url: '/v1/webhooks', payload: { url, events: ['task.created'] } });
      expect(res.statusCode, url).toBe(400);
      const body = res.json<ProblemBody>();
      expect(body.errors?.map((e) => e.field), url).toEqual(['url']);
      expect(body.detail, url).toMatch(/^url /);
    }
  });

  it('is allowed with WEBHOOK_ALLOW_PRIVATE_TARGETS=true', async () => {
    const res = await as(t.app, alice.accessToken)({ method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:8080/x', events: ['task.created'] } });
    expect(res.statusCode).toBe(201);
  });

  it('classifies addresses', () => {
    for (const a of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '224.0.0.1']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(isPrivateAddress(a), a).toBe(false);
  });
});

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

describe('delivery worker', () => {
  let server: Server;
  let port: number;
  const received: Received[] = [];
  let failuresLeft = 2;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        if (failuresLeft > 0) {
          failuresLeft--;
          res.writeHead(500).end('boom');
        } else res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  /** Runs the real worker loop until `done` holds, within a bound (never a timing assertion). */
  async function runWorkerUntil(done: () => Promise<boolean>): Promise<void> {
    const worker = startDeliveryWorker({ database: t.database, config: t.config, log: pino({ level: 'silent' }), pollIntervalMs: 20 });
    try {
      const deadline = Date.now() + 20_000;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error('deliveries did not finish within 20 s');
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      await worker.stop();
    }
  }

  it('fails twice with 500, then succeeds: three attempts logged, signed, with headers; redelivery adds an attempt', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    const secret = 'a-test-secret-of-decent-length';
    const hook = (
      await req({ method: 'POST', url: '/v1/webhooks', payload: { url: `http://127.0.0.1:${port}/hooks`, events: ['task.completed'], secret } })
    ).json<WebhookBody>();
    // another webhook of the same user, not subscribed to this type: gets nothing
    await req({ method: 'POST', url: '/v1/webhooks', payload: { url: `http://127.0.0.1:${port}/other`, events: ['task.deleted'] } });

    const { handle } = createNotificationsConsumer({ database: t.database, config: t.config });
    const event = taskEvent(s.user.id, 'task.completed', 'Ship it');
    await handle(event);
    await handle(event); // redelivered: no second delivery

    const deliveries = async () =>
      (await req({ method: 'GET', url: `/v1/webhooks/${hook.id}/deliveries?limit=100` })).json<PageBody<DeliveryBody>>().data;
    expect(await deliveries()).toMatchObject([{ attempt: 1, status: 'pending', eventId: event.id }]);

    await runWorkerUntil(async () => (await deliveries()).some((d) => d.status === 'succeeded'));

    const log = (await deliveries()).sort((a, b) => a.attempt - b.attempt);
    expect(log.map((d) => [d.attempt, d.status, d.responseStatus])).toEqual([
      [1, 'failed', 500],
      [2, 'failed', 500],
      [3, 'succeeded', 204],
    ]);
    expect(log[0]!.error).toBe('HTTP 500');
    expect(received).toHaveLength(3);

    const last = received[2]!;
    const deliveryId = log[2]!.id;
    expect(last.headers['content-type']).toBe('application/json');
    expect(last.headers['webhook-id']).toBe(deliveryId);
    const timestamp = Number(last.headers['webhook-timestamp']);
    expect(Number.isInteger(timestamp)).toBe(true);
    expect(Math.abs(timestamp - Date.now() / 1000)).toBeLessThan(600);
    const expected = `v1=${createHmac('sha256', secret).update(`${timestamp}.${last.body}`).digest('hex')}`;
    expect(last.headers['webhook-signature']).toBe(expected);
    expect(verify(secret, timestamp, last.body, last.headers['webhook-signature'] as string)).toBe(true);
    expect(verify('another-secret-entirely', timestamp, last.body, last.headers['webhook-signature'] as string)).toBe(false);
    const payload = JSON.parse(last.body) as { id: string; event: { id: string; type: string; data: { task: { title: string } } } };
    expect(payload.id).toBe(deliveryId);
    expect(payload.event).toEqual(JSON.parse(JSON.stringify(event)));
    // each attempt is its own delivery id
    expect(new Set(received.map((r) => r.headers['webhook-id'])).size).toBe(3);

    // manual redelivery: a new attempt of the same event
    const redo = await req({ method: 'POST', url: `/v1/webhooks/${hook.id}/deliveries/${deliveryId}/redeliver` });
    expect(redo.statusCode).toBe(202);
    expect(redo.json<DeliveryBody>()).toMatchObject({ attempt: 4, status: 'pending', eventId: event.id });
    await runWorkerUntil(async () => (await deliveries()).every((d) => d.status !== 'pending'));
    expect((await deliveries()).filter((d) => d.status === 'succeeded')).toHaveLength(2);
    expect(received).toHaveLength(4);
    expect(JSON.parse(received[3]!.body)).toMatchObject({ id: redo.json<DeliveryBody>().id, event: { id: event.id } });
  });

  it('gives up after WEBHOOK_MAX_ATTEMPTS; webhooks off in preferences enqueue nothing', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    // nothing listens on port 9 of loopback: every attempt fails to connect
    const hook = (await req({ method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/x', events: ['task.created'] } })).json<WebhookBody>();
    const { handle } = createNotificationsConsumer({ database: t.database, config: t.config });
    await handle(taskEvent(s.user.id, 'task.created'));
    const deliveries = async () =>
      (await req({ method: 'GET', url: `/v1/webhooks/${hook.id}/deliveries?limit=100` })).json<PageBody<DeliveryBody>>().data;
    await runWorkerUntil(async () => (await deliveries()).every((d) => d.status !== 'pending'));
    const log = await deliveries();
    expect(log.map((d) => d.attempt).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(log.every((d) => d.status === 'failed' && d.responseStatus === null && d.error)).toBe(true);

    await req({ method: 'PATCH', url: '/v1/users/me/notification-preferences', payload: { webhooks: false } });
    await handle(taskEvent(s.user.id, 'task.created'));
    expect(await deliveries()).toHaveLength(5);
  });

  it('checks the target again at delivery time: a private address is refused without a request', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    const hook = (await req({ method: 'POST', url: '/v1/webhooks', payload: { url: `http://127.0.0.1:${port}/late`, events: ['task.deleted'] } })).json<WebhookBody>();
    const { handle } = createNotificationsConsumer({ database: t.database, config: t.config });
    await handle(taskEvent(s.user.id, 'task.deleted'));
    const before = received.length;
    const strictConfig = { ...t.config, notifications: { ...t.config.notifications, webhooks: { ...t.config.notifications.webhooks, allowPrivateTargets: false, maxAttempts: 1 } } };
    const worker = startDeliveryWorker({ database: t.database, config: strictConfig, log: pino({ level: 'silent' }), pollIntervalMs: 20 });
    const deliveries = async () =>
      (await req({ method: 'GET', url: `/v1/webhooks/${hook.id}/deliveries` })).json<PageBody<DeliveryBody>>().data;
    try {
      const deadline = Date.now() + 20_000;
      while ((await deliveries()).some((d) => d.status === 'pending')) {
        if (Date.now() > deadline) throw new Error('delivery did not finish within 20 s');
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      await worker.stop();
    }
    const [d] = await deliveries();
    expect(d).toMatchObject({ status: 'failed', responseStatus: null });
    expect(d!.error).toMatch(/^target refused: resolves to a private/);
    expect(received.length).toBe(before);
  });
});
