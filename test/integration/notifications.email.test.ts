// Email for task events: a real SMTP server (smtp-server) on a free loopback port receives it.
import { pino } from 'pino';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotificationsConsumer } from '../../src/modules/notifications/handler.js';
import { createDeliveryWorker } from '../../src/modules/notifications/worker.js';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import { taskEvent } from '../helpers/events.js';
import { freePort } from '../helpers/process.js';

interface Mail {
  from: string;
  to: string[];
  raw: string;
}

let t: TestApp;
let smtp: SMTPServer;
const inbox: Mail[] = [];
let rejectNext = 0;

beforeAll(async () => {
  const port = await freePort();
  smtp = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (c: Buffer) => (raw += c.toString()));
      stream.on('end', () => {
        if (rejectNext > 0) {
          rejectNext--;
          const err = Object.assign(new Error('try again later'), { responseCode: 451 });
          return callback(err);
        }
        inbox.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), raw });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(port, '127.0.0.1', resolve));
  t = await createTestApp({ env: { SMTP_URL: `smtp://127.0.0.1:${port}`, MAIL_FROM: 'Task API <tasks@example.test>', WEBHOOK_BACKOFF_BASE_MS: '1' } });
});
afterAll(async () => {
  await t.close();
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
});

describe('email notifications', () => {
  it('sends the email for a task event over SMTP when the user wants email, retrying a refusal', async () => {
    const s = await register(t.app);
    await t.deliverAccountEvents(); // the notifications module learns the address (user.created)
    await as(t.app, s.accessToken)({ method: 'PATCH', url: '/v1/users/me/notification-preferences', payload: { email: true } });
    const { handle } = createNotificationsConsumer({ database: t.database, config: t.config });
    const event = taskEvent(s.user.id, 'task.completed', 'Quarterly report');
    await handle(event);
    await handle(event); // redelivery: still one email

    rejectNext = 1; // the first attempt is refused with a temporary error
    const worker = createDeliveryWorker({ database: t.database, config: t.config, log: pino({ level: 'silent' }) });
    const deadline = Date.now() + 20_000;
    try {
      while (inbox.length === 0) {
        if (Date.now() > deadline) throw new Error('no email within 20 s');
        await worker.runOnce();
        await new Promise((r) => setTimeout(r, 25));
      }
      for (let i = 0; i < 3; i++) await worker.runOnce(); // nothing else is due
    } finally {
      await worker.stop();
    }
    expect(inbox).toHaveLength(1);
    const mail = inbox[0]!;
    expect(mail.to).toEqual([s.user.email]);
    expect(mail.from).toBe('tasks@example.test');
    expect(mail.raw).toMatch(/^Subject: Task completed: Quarterly report\r?$/m);
    expect(mail.raw).toContain('Quarterly report');
    const rows = await t.database.raw.query<{ status: string; attempts: number }>('select status, attempts from email_deliveries where event_id = $1', [event.id]);
    expect(rows).toEqual([{ status: 'succeeded', attempts: 2 }]);
  });

  it('sends nothing to a user who has not asked for email (the default)', async () => {
    const s = await register(t.app);
    await t.deliverAccountEvents(); // the notifications module learns the address (user.created)
    const { handle } = createNotificationsConsumer({ database: t.database, config: t.config });
    const event = taskEvent(s.user.id);
    await handle(event);
    const rows = await t.database.raw.query('select 1 from email_deliveries where event_id = $1', [event.id]);
    expect(rows).toHaveLength(0);
  });
});
