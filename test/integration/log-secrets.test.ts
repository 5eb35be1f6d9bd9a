// No secret in any log line. Every line the process writes (the boot logger, the app's logger, the
// delivery worker's) goes to one capture while scenarios fail where secrets are at hand: a write
// that fails in the database with a webhook secret among its parameters, wrong-password logins,
// a refresh token used twice, a password change, calls of a deleted account, webhook deliveries
// that fail, and SMTP that refuses the credentials in SMTP_URL. Then every line is searched for
// every secret used: passwords, access and refresh tokens, webhook secrets, the SMTP user and
// password, the webhook receiver's password, the JWT private key.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { openInfrastructure, type Infrastructure } from '../../src/infrastructure.js';
import { createNotificationsConsumer } from '../../src/modules/notifications/handler.js';
import { createDeliveryWorker } from '../../src/modules/notifications/worker.js';
import { loggerOptions } from '../../src/observability/logging.js';
import { accountEventsDeliverer, as, register, testPrivateKey, uniqueEmail, type SessionBody } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { taskEvent } from '../helpers/events.js';
import { freePort } from '../helpers/process.js';
import { REDIS_URL } from '../setup/services.js';

type Line = Record<string, unknown>;

const unique = (tag: string) => `${tag}-${randomBytes(9).toString('base64url')}`;
const SMTP_USER = unique('smtpuser');
const SMTP_PASS = unique('smtppass');
const RECEIVER_PASS = unique('receiverpass');
const PRIVATE_KEY = testPrivateKey();

/** Every secret the scenarios use or are given; searched for in every line. */
const secrets = new Set<string>([SMTP_USER, SMTP_PASS, RECEIVER_PASS, ...PRIVATE_KEY.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'))]);
const keep = <T extends string>(s: T): T => {
  secrets.add(s);
  return s;
};
const keepSession = (s: SessionBody): SessionBody => {
  keep(s.accessToken);
  keep(s.refreshToken);
  return s;
};

let db: TestDatabase;
let infra: Infrastructure;
let app: FastifyInstance;
let config: Config;
let smtp: SMTPServer;
let receiver: Server;
let receiverUrl: string;
let raw = '';
const lines: Line[] = [];

const capture = new Writable({
  write(chunk: Buffer, _enc, done) {
    raw += chunk.toString();
    for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Line);
    done();
  },
});

beforeAll(async () => {
  const smtpPort = await freePort();
  smtp = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    logger: false,
    onAuth: (_auth, _session, callback) => callback(new Error('Authentication failed')),
  });
  await new Promise<void>((resolve) => smtp.listen(smtpPort, '127.0.0.1', resolve));
  // A webhook receiver that answers every delivery with a 500.
  receiver = createServer((req, res) => {
    req.resume();
    res.writeHead(500).end();
  });
  const receiverPort = await freePort();
  await new Promise<void>((resolve) => receiver.listen(receiverPort, '127.0.0.1', resolve));
  receiverUrl = `http://hooks:${RECEIVER_PASS}@127.0.0.1:${receiverPort}/hook`;

  db = await createTestDatabase();
  config = loadConfig({
    NODE_ENV: 'production',
    LOG_LEVEL: 'debug',
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:logsecrets:${process.pid}:`,
    JWT_PRIVATE_KEY: PRIVATE_KEY,
    RATE_LIMIT_ENABLED: 'false',
    SMTP_URL: `smtp://${SMTP_USER}:${SMTP_PASS}@127.0.0.1:${smtpPort}`,
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    WEBHOOK_BACKOFF_BASE_MS: '1',
    WEBHOOK_TIMEOUT_MS: '2000',
  });
  const options = { ...loggerOptions(config), transport: undefined };
  infra = await openInfrastructure(config, pino(options, capture));
  app = await buildApp({ config, ...infra, logger: { ...options, stream: capture } });
  await app.ready();
  // A database that refuses some webhook rows, quoting the secret in its message and detail: a
  // write that fails in the database with a secret among its parameters.
  await infra.database.raw.script(`
    CREATE FUNCTION test_refuse_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.url LIKE '%/refused%' THEN
        RAISE EXCEPTION 'webhook refused, secret %', NEW.secret USING DETAIL = 'secret ' || NEW.secret, HINT = NEW.secret;
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_refuse_webhook BEFORE INSERT OR UPDATE ON webhooks FOR EACH ROW EXECUTE FUNCTION test_refuse_webhook();
  `);
});
afterAll(async () => {
  await app.close();
  await infra.close();
  await db.drop();
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

const linesWith = (msg: string) => lines.filter((l) => l.msg === msg);

describe('no secret in any log line', () => {
  let user: SessionBody;
  const password = keep(unique('password'));

  it('sign-up, wrong-password logins, a refresh token used twice, a password change', async () => {
    const email = uniqueEmail('logsecrets');
    user = keepSession(await register(app, email, password));
    await accountEventsDeliverer(infra.database, infra.cache)(); // the notifications module learns the address
    for (let i = 0; i < 3; i++) {
      const wrong = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: keep(unique('wrongpassword')) } });
      expect(wrong.statusCode).toBe(401);
    }
    const login = keepSession((await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } })).json<SessionBody>());
    const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: login.refreshToken } });
    keepSession(refreshed.json<SessionBody>());
    const reused = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: login.refreshToken } });
    expect(reused.statusCode).toBe(401);
    expect(lines.some((l) => String(l.msg).includes('reuse'))).toBe(true);
    const req = as(app, user.accessToken);
    const badChange = await req({ method: 'PATCH', url: '/v1/users/me', payload: { password: keep(unique('newpassword')), currentPassword: keep(unique('notcurrent')) } });
    expect(badChange.statusCode).toBe(400);
  });

  it('a webhook write that fails in the database, its secret among the parameters: a 500 logged with SQLSTATE and stack, without the secret', async () => {
    const req = as(app, user.accessToken);
    const created = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/refused', events: ['task.created'], secret: keep(unique('hooksecret')) } });
    expect(created.statusCode).toBe(500);
    const ok = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/fine', events: ['task.created'] } });
    expect(ok.statusCode).toBe(201);
    const hook = ok.json<{ id: string; secret: string }>();
    keep(hook.secret);
    const patched = await req({ method: 'PATCH', url: `/v1/webhooks/${hook.id}`, payload: { url: 'http://127.0.0.1:9/refused-too', secret: keep(unique('patchsecret')) } });
    expect(patched.statusCode).toBe(500);

    const failed = linesWith('request failed');
    expect(failed.map((l) => l.route)).toEqual(['/v1/webhooks', '/v1/webhooks/:id']);
    for (const line of failed) {
      expect(line).toMatchObject({ level: 50, statusCode: 500, err: { code: 'P0001', message: expect.stringMatching(/^failed query \(SQLSTATE P0001\): webhook refused, secret \[redacted\]$/) } });
      expect(String((line.err as { stack: string }).stack)).toContain('\n    at ');
    }
  });

  it("a deleted account's writes, secrets included: answered 401, nothing logged of them", async () => {
    const s = keepSession(await register(app, uniqueEmail('logsecrets-gone'), keep(unique('gonepassword'))));
    const req = as(app, s.accessToken);
    expect((await req({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);
    await accountEventsDeliverer(infra.database, infra.cache)(); // user.deleted reaches notifications
    const hook = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: 'http://127.0.0.1:9/gone', events: ['task.created'], secret: keep(unique('gonesecret')) } });
    expect(hook.statusCode).toBe(401);
    expect((await req({ method: 'PATCH', url: '/v1/users/me/notification-preferences', payload: { email: true } })).statusCode).toBe(401);
  });

  it('webhook deliveries that fail (a 500, a refused connection) and email over SMTP that refuses the credentials', async () => {
    const req = as(app, user.accessToken);
    const toReceiver = await req({ method: 'POST', url: '/v1/webhooks', payload: { url: receiverUrl, events: ['task.created'], secret: keep(unique('receiversecret')) } });
    expect(toReceiver.statusCode).toBe(201);
    const closed = `http://hooks:${RECEIVER_PASS}@127.0.0.1:${await freePort()}/closed`;
    expect((await req({ method: 'POST', url: '/v1/webhooks', payload: { url: closed, events: ['task.created'] } })).statusCode).toBe(201);
    expect((await req({ method: 'PATCH', url: '/v1/users/me/notification-preferences', payload: { email: true } })).statusCode).toBe(200);

    const { handle } = createNotificationsConsumer({ database: infra.database, config });
    await handle(taskEvent(user.user.id, 'task.created', 'Secret plans'));
    const worker = createDeliveryWorker({ database: infra.database, config, log: app.log });
    try {
      await worker.runOnce();
    } finally {
      await worker.stop();
    }
    // the receiver's 500, and refused connections (the closed port, and port 9 of the earlier webhook)
    const deliveries = linesWith('webhook delivery failed');
    expect(deliveries.filter((l) => l.status === 500)).toHaveLength(1);
    const refused = deliveries.filter((l) => l.status === null);
    expect(refused).toHaveLength(2);
    for (const l of refused) expect(l.error).toMatch(/ECONNREFUSED/);
    const emails = linesWith('email delivery failed');
    expect(emails).toHaveLength(1);
    expect(String(emails[0]!.error)).toMatch(/Invalid login|535|Authentication/);
  });

  it('not one of the secrets is in any line', () => {
    expect(lines.length).toBeGreaterThan(20);
    expect(raw.split('\n').filter(Boolean)).toHaveLength(lines.length);
    expect(secrets.size).toBeGreaterThan(20);
    for (const secret of secrets) {
      const found = lines.find((l) => JSON.stringify(l).includes(secret));
      expect(found, `${secret} is in a log line`).toBeUndefined();
    }
    // and no Authorization header, whatever its token
    expect(raw).not.toMatch(/Bearer [A-Za-z0-9]/);
  });
});
