// The bus given several broker nodes (AMQP_URL listing a cluster's nodes): it connects to the
// first that answers, and after losing its node it reconnects to the next one, for publishing
// and consuming alike. Two "nodes" here are a RabbitMQ node of this test's own (killed with
// SIGKILL) and the shared broker; they are not one cluster, so each has its own queue, which is
// enough to see where the bus went. And a dead-letter queue an earlier version declared as a
// classic queue is kept, with a warning, instead of stopping the consumers.
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeOf } from '../../src/events/amqp-nodes.js';
import { RabbitMqEventBus } from '../../src/events/rabbitmq.js';
import { PoisonMessageError } from '../../src/shared/poison.js';
import type { DomainEvent } from '../../src/shared/events.js';
import { uuidv7 } from '../../src/shared/ids.js';
import { AMQP_URL, deleteExchange, testExchange } from '../helpers/amqp.js';
import { taskEvent, taskOf } from '../helpers/events.js';
import { ownRabbit, rabbitmqAvailable, type OwnRabbit } from '../helpers/rabbitmq-server.js';
import { twoFreePorts } from '../../tools/local.js';

interface Line {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLog(lines: Line[]) {
  return {
    info: (obj: object, msg: string) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    error: (obj: object, msg: string) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds (every 50 ms, at most `tries` times). */
async function until(check: () => boolean, tries = 600): Promise<boolean> {
  for (let i = 0; i < tries && !check(); i++) await sleep(50);
  return check();
}

/** Publishes, retrying (bounded) while the bus has no node yet: what the relay's backoff does. */
async function publishEventually(bus: RabbitMqEventBus, events: DomainEvent[]): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      await bus.publish(events);
      return;
    } catch (err) {
      last = err;
      await sleep(100);
    }
  }
  throw last;
}

describe('event bus with several broker nodes', () => {
  it('connects to the first node that answers', async () => {
    const exchange = testExchange();
    const [closed] = await twoFreePorts(); // nothing listens there
    const lines: Line[] = [];
    const bus = new RabbitMqEventBus({ url: [`amqp://guest:guest@127.0.0.1:${closed}`, AMQP_URL], exchange, log: recordingLog(lines) });
    const received: string[] = [];
    bus.subscribe('first', async (e) => {
      received.push(e.id);
    });
    try {
      await bus.start();
      const event = taskEvent(uuidv7());
      await bus.publish([event]);
      expect(await until(() => received.length > 0)).toBe(true);
      expect(received).toEqual([event.id]);
      expect(lines.filter((l) => l.msg === 'rabbitmq connected').map((l) => l.obj.node)).toEqual([nodeOf(AMQP_URL)]);
    } finally {
      await bus.close();
      await deleteExchange(exchange, AMQP_URL, [`${exchange}.first`, `${exchange}.first.dead`]).catch(() => undefined);
      await deleteExchange(`${exchange}.dead`).catch(() => undefined);
    }
  });

  it('fails naming every node when none answers', async () => {
    const [a, b] = await twoFreePorts();
    const bus = new RabbitMqEventBus({ url: [`amqp://guest:guest@127.0.0.1:${a}`, `amqp://guest:guest@127.0.0.1:${b}`], exchange: testExchange(), log: recordingLog([]) });
    try {
      await expect(bus.publish([taskEvent(uuidv7())])).rejects.toThrow(new RegExp(`no broker node answered .*127\\.0\\.0\\.1:${a}.*127\\.0\\.0\\.1:${b}`));
    } finally {
      await bus.close();
    }
  });

  it('keeps an existing classic dead-letter queue (an earlier version declared it) and dead-letters into it', async () => {
    const exchange = testExchange();
    const queue = `${exchange}.legacy`;
    const conn = await connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.assertQueue(`${queue}.dead`, { durable: true }); // classic, as before
    const lines: Line[] = [];
    const bus = new RabbitMqEventBus({ url: AMQP_URL, exchange, log: recordingLog(lines) });
    const received: string[] = [];
    bus.subscribe('legacy', async (e) => {
      if (taskOf(e).data.task.title === 'poison') throw new PoisonMessageError('test poison', 'malformed');
      received.push(e.id);
    });
    try {
      await bus.start();
      expect(lines.filter((l) => l.level === 'warn' && l.obj.queue === `${queue}.dead`).map((l) => l.msg)).toEqual([
        'rabbitmq: the dead-letter queue is a classic queue from an earlier version; kept (see docs/runbooks/dead-letters.md)',
      ]);
      const fine = taskEvent(uuidv7());
      const poison = taskEvent(uuidv7(), 'task.created', 'poison');
      await bus.publish([fine, poison]);
      expect(await until(() => received.length > 0)).toBe(true);
      expect(received).toEqual([fine.id]);
      let got: Awaited<ReturnType<typeof ch.get>> = false;
      for (let i = 0; i < 200 && !got; i++) {
        got = await ch.get(`${queue}.dead`, { noAck: true });
        if (!got) await sleep(25);
      }
      expect(got && got.properties.messageId).toBe(poison.id);
    } finally {
      await bus.close();
      await conn.close().catch(() => undefined);
      await deleteExchange(exchange, AMQP_URL, [queue, `${queue}.dead`]).catch(() => undefined);
      await deleteExchange(`${exchange}.dead`).catch(() => undefined);
    }
  });
});

describe.skipIf(!rabbitmqAvailable())('event bus losing its node', () => {
  let rabbit: OwnRabbit;
  beforeAll(async () => {
    rabbit = await ownRabbit();
    await rabbit.start();
  }, 120_000);
  afterAll(async () => {
    await rabbit?.destroy();
  }, 120_000);

  it('reconnects to the next node, publishing and consuming there', async () => {
    const exchange = testExchange();
    const lines: Line[] = [];
    const bus = new RabbitMqEventBus({ url: [rabbit.url, AMQP_URL], exchange, log: recordingLog(lines), reconnectMinMs: 50, reconnectMaxMs: 500 });
    const received: string[] = [];
    bus.subscribe('moving', async (e) => {
      received.push(e.id);
    });
    try {
      await bus.start();
      const before = taskEvent(uuidv7());
      await bus.publish([before]);
      expect(await until(() => received.includes(before.id))).toBe(true);

      await rabbit.kill();
      // These two nodes are not one cluster: the queue exists on the next one only once the
      // consumers have declared it there (in a cluster it is there all along).
      expect(await until(() => lines.some((l) => l.msg === 'rabbitmq consumers connected'))).toBe(true);
      const after = taskEvent(uuidv7());
      await publishEventually(bus, [after]);
      expect(await until(() => received.includes(after.id))).toBe(true);

      const connected = lines.filter((l) => l.msg === 'rabbitmq connected').map((l) => l.obj.node);
      expect(connected).toEqual([nodeOf(rabbit.url), nodeOf(AMQP_URL)]);
      expect(lines.filter((l) => l.msg === 'rabbitmq connection closed').map((l) => l.obj.node)).toEqual([nodeOf(rabbit.url)]);
    } finally {
      await bus.close();
      await deleteExchange(exchange, AMQP_URL, [`${exchange}.moving`, `${exchange}.moving.dead`]).catch(() => undefined);
      await deleteExchange(`${exchange}.dead`).catch(() => undefined);
    }
  }, 120_000);
});
