// Event settings: validated like every other variable; the AMQP connection always has a heartbeat.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { withHeartbeat } from '../../src/events/rabbitmq.js';

describe('event configuration', () => {
  it('defaults: in-process bus, relay on, 200 ms poll, batches of 100, 24 h retention', () => {
    expect(loadConfig({}).events).toEqual({
      amqpUrls: [],
      exchange: 'task-api.events',
      relayEnabled: true,
      pollMs: 200,
      batchSize: 100,
      retentionHours: 24,
      deliveryLimit: 5,
    });
    const c = loadConfig({ AMQP_URL: 'amqp://u:p@mq:5672/v', AMQP_EXCHANGE: 'x', OUTBOX_RELAY_ENABLED: 'false', OUTBOX_POLL_MS: '50', OUTBOX_BATCH: '10', OUTBOX_RETENTION_HOURS: '1', EVENTS_DELIVERY_LIMIT: '3' });
    expect(c.events).toEqual({ amqpUrls: ['amqp://u:p@mq:5672/v'], exchange: 'x', relayEnabled: false, pollMs: 50, batchSize: 10, retentionHours: 1, deliveryLimit: 3 });
  });

  it('a bad value stops start-up naming the variable', () => {
    for (const [name, value] of [
      ['AMQP_URL', 'http://mq'],
      ['AMQP_URL', 'amqp://a:5672,http://b:5672'],
      ['AMQP_URL', 'amqp://a:5672,'],
      ['AMQP_URL', 'amqp://a:5672,amqp://a:5672'],
      ['OUTBOX_POLL_MS', '5'],
      ['OUTBOX_BATCH', '0'],
      ['OUTBOX_RETENTION_HOURS', 'x'],
      ['OUTBOX_RELAY_ENABLED', 'maybe'],
      ['EVENTS_DELIVERY_LIMIT', '0'],
    ] as const) {
      expect(() => loadConfig({ [name]: value }), name).toThrow(ConfigError);
      try {
        loadConfig({ [name]: value });
      } catch (err) {
        expect((err as ConfigError).problems.join('\n'), name).toContain(name);
      }
    }
  });

  it('AMQP_URL may list the nodes of a cluster, comma-separated, in the order given', () => {
    const urls = ['amqp://u:p@mq-1:5672/v', 'amqp://u:p@mq-2:5672/v', 'amqps://u:p@mq-3/v'];
    expect(loadConfig({ AMQP_URL: urls.join(', ') }).events.amqpUrls).toEqual(urls);
    // A bad item is named without its credentials.
    try {
      loadConfig({ AMQP_URL: 'amqp://u:secret@mq-1:5672,ftp://u:secret@mq-2' });
      expect.unreachable();
    } catch (err) {
      const text = (err as ConfigError).problems.join('\n');
      expect(text).toContain('AMQP_URL: "ftp://***@mq-2"');
      expect(text).not.toContain('secret');
    }
  });

  it('adds a 15 s heartbeat unless the URL names one', () => {
    expect(new URL(withHeartbeat('amqp://guest:guest@127.0.0.1:5672', 15)).searchParams.get('heartbeat')).toBe('15');
    expect(new URL(withHeartbeat('amqp://h/v?heartbeat=30', 15)).searchParams.get('heartbeat')).toBe('30');
  });
});
