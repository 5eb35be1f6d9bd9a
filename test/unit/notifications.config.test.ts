// The notification settings are validated like every other variable. (That the notification
// tables match their Drizzle definitions is checked with every other table in schema.test.ts.)
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('notifications configuration', () => {
  it('has defaults: no email, private targets refused, 8 attempts, 5 s timeout', () => {
    const n = loadConfig({}).notifications;
    expect(n.smtpUrl).toBeUndefined();
    expect(n.webhooks).toEqual({ allowPrivateTargets: false, maxAttempts: 8, timeoutMs: 5000, backoffBaseMs: 10000, backoffMaxMs: 6 * 3600 * 1000 });
    const set = loadConfig({ SMTP_URL: 'smtp://u:p@mail:587', MAIL_FROM: 'a@b.c', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_MAX_ATTEMPTS: '3' }).notifications;
    expect(set).toMatchObject({ smtpUrl: 'smtp://u:p@mail:587', mailFrom: 'a@b.c', webhooks: { allowPrivateTargets: true, maxAttempts: 3 } });
  });

  it.each([
    ['SMTP_URL', 'http://mail'],
    ['MAIL_FROM', 'nobody'],
    ['WEBHOOK_ALLOW_PRIVATE_TARGETS', 'yes'],
    ['WEBHOOK_MAX_ATTEMPTS', '0'],
    ['WEBHOOK_MAX_ATTEMPTS', 'many'],
    ['WEBHOOK_TIMEOUT_MS', '10'],
    ['WEBHOOK_BACKOFF_BASE_MS', '-1'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    let problems = '';
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      problems = (err as ConfigError).problems.join('\n');
    }
    expect(problems).toContain(name);
  });
});
