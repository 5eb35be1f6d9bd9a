// Operator tools for a consumer's dead-letter queue (<exchange>.<consumer>.dead): list what is
// there, and replay it into that consumer's queue only (other consumers already had it). Given a
// cluster's nodes, they work through the first node that answers.
import type { ChannelModel, GetMessage } from 'amqplib';
import { connectToAny } from './amqp-nodes.js';

export interface DeadLetter {
  messageId: string | undefined;
  type: string | undefined;
  /** Why RabbitMQ dead-lettered it, from the x-death header (rejected, delivery_limit, ...). */
  reason: string | undefined;
  deaths: number;
  body: string;
}

interface Death {
  reason?: string;
  count?: number;
}

const deadQueue = (exchange: string, consumer: string) => `${exchange}.${consumer}.dead`;

function describe(msg: GetMessage): DeadLetter {
  const deaths = ((msg.properties.headers)?.['x-death'] ?? []) as Death[];
  return {
    messageId: msg.properties.messageId as string | undefined,
    type: msg.properties.type as string | undefined,
    reason: deaths[0]?.reason,
    deaths: deaths.reduce((n, d) => n + (d.count ?? 1), 0),
    body: msg.content.toString('utf8'),
  };
}

type Confirming = Awaited<ReturnType<ChannelModel['createConfirmChannel']>>;
type Urls = string | readonly string[];

/**
 * Takes up to `limit` messages from the consumer's dead-letter queue, unacknowledged, and hands
 * each to `take`; whatever `take` leaves unsettled is put back when the walk ends.
 */
async function walkDeadLetters(
  url: Urls,
  exchange: string,
  consumer: string,
  limit: number,
  take: (ch: Confirming, msg: GetMessage) => Promise<void>,
): Promise<DeadLetter[]> {
  const { conn } = await connectToAny(typeof url === 'string' ? [url] : url, 0);
  try {
    const ch = await conn.createConfirmChannel();
    const walked: DeadLetter[] = [];
    for (let i = 0; i < limit; i++) {
      const msg = await ch.get(deadQueue(exchange, consumer), { noAck: false });
      if (!msg) break;
      await take(ch, msg);
      walked.push(describe(msg));
    }
    ch.nackAll(true);
    await ch.close();
    return walked;
  } finally {
    await conn.close();
  }
}

/** Reads up to `limit` dead letters and puts them all back: the queue is unchanged. */
export function listDeadLetters(url: Urls, exchange: string, consumer: string, limit: number): Promise<DeadLetter[]> {
  return walkDeadLetters(url, exchange, consumer, limit, async () => undefined);
}

/**
 * Moves up to `limit` dead letters back to the consumer's queue: each is republished (same
 * messageId, type, headers) on a confirm channel and removed from the dead-letter queue only
 * after the broker confirmed the copy, so a crash in between duplicates rather than loses.
 */
export function replayDeadLetters(url: Urls, exchange: string, consumer: string, limit: number): Promise<DeadLetter[]> {
  return walkDeadLetters(url, exchange, consumer, limit, async (ch, msg) => {
    const { 'x-death': _death, 'x-first-death-exchange': _e, 'x-first-death-queue': _q, 'x-first-death-reason': _r, ...headers } =
      (msg.properties.headers ?? {}) as Record<string, unknown>;
    ch.sendToQueue(`${exchange}.${consumer}`, msg.content, {
      persistent: true,
      contentType: msg.properties.contentType as string | undefined,
      messageId: msg.properties.messageId as string | undefined,
      type: msg.properties.type as string | undefined,
      headers: { ...headers, 'x-replayed': true },
    });
    await ch.waitForConfirms();
    ch.ack(msg);
  });
}
