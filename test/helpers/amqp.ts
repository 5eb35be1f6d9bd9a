// Reading what the relay published: a queue of the test's own, bound to the test's own exchange.
import { randomBytes } from 'node:crypto';
import { connect, type ChannelModel, type ConsumeMessage } from 'amqplib';

import { AMQP_URL } from '../setup/services.js';

export { AMQP_URL };

export const testExchange = () => `task-api-test.${process.pid}.${randomBytes(5).toString('hex')}`;

export const silentLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface Reader {
  messages: ConsumeMessage[];
  /** messageId -> how many times it arrived. */
  counts(): Map<string, number>;
  /** Waits (bounded) until at least n messages arrived. */
  waitFor(n: number, tries?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Binds a queue to `exchange` (declared durable topic, as the bus does) and records every message.
 * `queue` names a durable queue that survives a broker restart; by default an exclusive one.
 */
export async function readExchange(exchange: string, url = AMQP_URL, queue?: string, messages: ConsumeMessage[] = []): Promise<Reader> {
  const conn: ChannelModel = await connect(url);
  conn.on('error', () => undefined);
  const ch = await conn.createChannel();
  await ch.assertExchange(exchange, 'topic', { durable: true });
  const q = queue ? (await ch.assertQueue(queue, { durable: true })).queue : (await ch.assertQueue('', { exclusive: true, autoDelete: true })).queue;
  await ch.bindQueue(q, exchange, '#');
  await ch.consume(q, (m) => m && messages.push(m), { noAck: true });
  return {
    messages,
    counts() {
      const c = new Map<string, number>();
      for (const m of messages) c.set(String(m.properties.messageId), (c.get(String(m.properties.messageId)) ?? 0) + 1);
      return c;
    },
    async waitFor(n, tries = 300) {
      for (let i = 0; i < tries && messages.length < n; i++) await new Promise((r) => setTimeout(r, 50));
    },
    async close() {
      await conn.close().catch(() => undefined);
    },
  };
}

export async function deleteExchange(exchange: string, url = AMQP_URL, queues: string[] = []): Promise<void> {
  const conn = await connect(url);
  conn.on('error', () => undefined);
  try {
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q);
    await ch.deleteExchange(exchange);
  } finally {
    await conn.close().catch(() => undefined);
  }
}
