// The RabbitMQ adapter of the event bus (amqplib). Publishing: a durable topic exchange, one
// confirm channel, persistent JSON messages (messageId = event id, type and routing key = event
// type, traceparent in the headers); publish() resolves only when the broker has confirmed
// every message. Consuming: a durable queue per consumer name, bound to the exchange, with a
// dead-letter queue (both quorum queues: replicated over a cluster's nodes). The connection is
// opened lazily, with a heartbeat; when the broker goes away, publishing fails (the relay retries
// with backoff) and consumers reconnect with backoff. Given the nodes of a cluster, the bus uses
// one connection to the first node that answers and, when that connection is lost, reconnects
// starting at the next node (amqp-nodes.ts).
import { context, propagation, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { connectToAny, nodeOf } from './amqp-nodes.js';
import type { DomainEvent, EventHandler } from '../shared/events.js';
import { isPoisonMessage } from '../shared/poison.js';
import type { ConsumeRecorder } from '../observability/recorders.js';
import { withConsumerSpan } from '../observability/trace-context.js';
import type { BusLogger, EventBus, SubscribeOptions } from './bus.js';
import { backoffMs } from '../shared/backoff.js';
import { isDatabaseUnavailable } from '../shared/db-errors.js';
import { errorMessage } from '../shared/errors.js';

export interface RabbitMqOptions {
  /** One broker, or the nodes of one cluster (tried in turn). */
  url: string | readonly string[];
  exchange: string;
  log: BusLogger;
  /** Seconds; amqplib's default is none. */
  heartbeatSeconds?: number;
  /** How long publish waits for confirms before it gives up and drops the connection. */
  confirmTimeoutMs?: number;
  /** Consumer prefetch per channel. */
  prefetch?: number;
  /**
   * Deliveries of one message before the broker dead-letters it (quorum queue x-delivery-limit;
   * RabbitMQ 3.10 has no default, so it is always set). Default 5.
   */
  deliveryLimit?: number;
  /** First retry delay of a failed handler; doubles per delivery, with full jitter, capped at 30 s. */
  retryBaseMs?: number;
  /**
   * How long a delivery is held while the handler fails because the database is unavailable
   * (a failover, PgBouncer restarting): the handler runs again after a backoff, and no delivery
   * of the message is spent. Past it, the failure counts as any other. Default 5 minutes, well
   * inside RabbitMQ's consumer_timeout (30 minutes), which closes a channel holding a delivery
   * longer.
   */
  outageHoldMs?: number;
  /** Consumer reconnection backoff bounds. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Counts consumed, failed (requeued) and dead-lettered deliveries per consumer. */
  recorder?: ConsumeRecorder;
}

interface Subscription {
  name: string;
  handler: EventHandler;
  types: string[];
}

/** The URL with a heartbeat, unless it names one already. */
export function withHeartbeat(url: string, seconds: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
  return u.toString();
}

export class RabbitMqEventBus implements EventBus {
  readonly kind = 'rabbitmq' as const;
  private readonly subs: Subscription[] = [];
  private conn: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private publishChannel: Promise<ConfirmChannel> | undefined;
  private consumerChannel: Channel | undefined;
  private closed = false;
  private consuming = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  private readonly urls: readonly string[];
  /** The node the next connection tries first: after a loss, the one after the lost node. */
  private nextNode = 0;

  constructor(private readonly opts: RabbitMqOptions) {
    this.urls = typeof opts.url === 'string' ? [opts.url] : opts.url;
    if (this.urls.length === 0) throw new Error('RabbitMqEventBus needs at least one broker URL');
  }

  get exchange(): string {
    return this.opts.exchange;
  }

  subscribe(name: string, handler: EventHandler, options: SubscribeOptions = {}): void {
    this.subs.push({ name, handler, types: options.types ?? ['#'] });
    this.opts.recorder?.subscribed?.(name);
  }

  /** Starts the consumers (if any); a broker that is down is retried in the background. */
  async start(): Promise<void> {
    this.consuming = true;
    if (this.subs.length === 0) return;
    try {
      await this.setupConsumers();
    } catch (err) {
      this.opts.log.warn({ err: errorMessage(err) }, 'rabbitmq: consumers not started yet, retrying');
      this.scheduleReconnect();
    }
  }

  async publish(events: DomainEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (this.closed) throw new Error('event bus is closed');
    const ch = await this.confirmChannel();
    const confirms = events.map(
      (event) =>
        new Promise<void>((resolve, reject) => {
          const headers: Record<string, string> = { schemaVersion: String(event.schemaVersion) };
          if (event.traceContext?.traceparent) headers.traceparent = event.traceContext.traceparent;
          if (event.traceContext?.tracestate) headers.tracestate = event.traceContext.tracestate;
          // Published in the writing request's trace context: with tracing on, the amqplib
          // instrumentation's publish span (and the traceparent it writes) joins that trace.
          const ctx = event.traceContext ? propagation.extract(ROOT_CONTEXT, event.traceContext) : ROOT_CONTEXT;
          const options = {
            persistent: true,
            contentType: 'application/json',
            messageId: event.id,
            type: event.type,
            timestamp: Math.floor(Date.parse(event.occurredAt) / 1000),
            headers,
          };
          const confirmed = (err: unknown) =>
            err ? reject(err instanceof Error ? err : new Error('message nacked by the broker')) : resolve();
          context.with(ctx, () => ch.publish(this.opts.exchange, event.type, Buffer.from(JSON.stringify(event)), options, confirmed));
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out waiting for publisher confirms')), this.opts.confirmTimeoutMs ?? 10_000);
    });
    try {
      await Promise.race([Promise.all(confirms), timeout]);
    } catch (err) {
      // Whatever was not confirmed stays pending in the outbox; start over on a fresh connection.
      this.dropConnection();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const conn = this.conn;
    this.conn = undefined;
    this.publishChannel = undefined;
    this.consumerChannel = undefined;
    if (conn) await conn.close().catch(() => undefined);
  }

  private async connection(): Promise<ChannelModel> {
    if (this.closed) throw new Error('event bus is closed');
    if (this.conn) return this.conn;
    this.connecting ??= (async () => {
      try {
        // A broker that accepts TCP but never answers must not hang the relay: 10 s to connect (each node).
        const heartbeat = this.opts.heartbeatSeconds ?? 15;
        const { conn, index } = await connectToAny(
          this.urls.map((u) => withHeartbeat(u, heartbeat)),
          this.nextNode,
          { timeout: 10_000 },
        );
        this.nextNode = index;
        const node = nodeOf(this.urls[index]!);
        if (this.urls.length > 1) this.opts.log.info({ node }, 'rabbitmq connected');
        conn.on('error', (err: Error) => this.opts.log.warn({ err: err.message, node }, 'rabbitmq connection error'));
        conn.on('close', () => {
          if (this.conn !== conn) return;
          this.conn = undefined;
          this.publishChannel = undefined;
          this.consumerChannel = undefined;
          this.nextNode = (index + 1) % this.urls.length;
          if (!this.closed) {
            this.opts.log.warn({ node }, 'rabbitmq connection closed');
            if (this.consuming && this.subs.length > 0) this.scheduleReconnect();
          }
        });
        if (this.closed) {
          await conn.close().catch(() => undefined);
          throw new Error('event bus is closed');
        }
        this.conn = conn;
        return conn;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private confirmChannel(): Promise<ConfirmChannel> {
    this.publishChannel ??= (async () => {
      const conn = await this.connection();
      const ch = await conn.createConfirmChannel();
      ch.on('error', (err: Error) => this.opts.log.warn({ err: err.message }, 'rabbitmq publish channel error'));
      ch.on('close', () => {
        if (this.publishChannel === current) this.publishChannel = undefined;
      });
      await ch.assertExchange(this.opts.exchange, 'topic', { durable: true });
      return ch;
    })();
    const current = this.publishChannel;
    current.catch(() => {
      if (this.publishChannel === current) this.publishChannel = undefined;
    });
    return current;
  }

  private dropConnection(): void {
    const conn = this.conn;
    // Whatever went wrong on this node, the next connection tries another first.
    if (conn) this.nextNode = (this.nextNode + 1) % this.urls.length;
    this.conn = undefined;
    this.publishChannel = undefined;
    this.consumerChannel = undefined;
    if (conn) {
      conn.close().catch(() => undefined);
      if (this.consuming && this.subs.length > 0 && !this.closed) this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const min = this.opts.reconnectMinMs ?? 200;
    const max = this.opts.reconnectMaxMs ?? 10_000;
    const delay = backoffMs(this.reconnectAttempt + 1, { baseMs: min, maxMs: max, jitter: 'spread' });
    this.reconnectAttempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.setupConsumers().then(
        () => {
          this.reconnectAttempt = 0;
          this.opts.log.info({}, 'rabbitmq consumers connected');
        },
        (err: unknown) => {
          this.opts.log.warn({ err: errorMessage(err) }, 'rabbitmq reconnect failed');
          this.scheduleReconnect();
        },
      );
    }, delay);
    this.reconnectTimer.unref();
  }

  private async setupConsumers(): Promise<void> {
    if (this.closed || this.consumerChannel) return;
    const conn = await this.connection();
    const ch = await conn.createChannel();
    ch.on('error', (err: Error) => this.opts.log.warn({ err: err.message }, 'rabbitmq consumer channel error'));
    ch.on('close', () => {
      // The channel alone can close (a channel error): consume again on a new one.
      if (this.consumerChannel !== ch) return;
      this.consumerChannel = undefined;
      if (this.conn && !this.closed) this.scheduleReconnect();
    });
    await ch.prefetch(this.opts.prefetch ?? 20);
    const ex = this.opts.exchange;
    await ch.assertExchange(ex, 'topic', { durable: true });
    const dlx = `${ex}.dead`;
    await ch.assertExchange(dlx, 'direct', { durable: true });
    for (const sub of this.subs) {
      const queue = `${ex}.${sub.name}`;
      await this.assertDeadLetterQueue(conn, `${queue}.dead`);
      await ch.bindQueue(`${queue}.dead`, dlx, queue);
      await ch.assertQueue(queue, {
        durable: true,
        deadLetterExchange: dlx,
        deadLetterRoutingKey: queue,
        arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': this.opts.deliveryLimit ?? 5 },
      });
      for (const t of sub.types) await ch.bindQueue(queue, ex, t);
      await ch.consume(queue, (msg) => {
        if (msg) void this.handle(ch, sub, msg);
      });
    }
    this.consumerChannel = ch;
  }

  /**
   * The dead-letter queue, a quorum queue: a classic queue lives on one node, and while that node
   * is down nothing could be dead-lettered, nor could the consumers declare their queues again.
   * One declared as a classic queue by an earlier version is kept as it is (redeclaring it as
   * quorum is refused with PRECONDITION_FAILED, which closes the channel: hence a channel of its
   * own), with a warning: docs/runbooks/dead-letters.md says how to move it.
   */
  private async assertDeadLetterQueue(conn: ChannelModel, queue: string): Promise<void> {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    } catch (err) {
      if ((err as { code?: number }).code !== 406) throw err;
      this.opts.log.warn({ queue, err: errorMessage(err) }, 'rabbitmq: the dead-letter queue is a classic queue from an earlier version; kept (see docs/runbooks/dead-letters.md)');
      return;
    }
    await ch.close().catch(() => undefined);
  }

  /**
   * Acks after the handler succeeds. A poison message (not JSON, or the handler says so) goes to
   * the dead-letter queue at once. Another failure is requeued after a backoff; the quorum
   * queue counts deliveries and dead-letters the message past x-delivery-limit.
   * The recorder counts each outcome; a requeue the broker will dead-letter (this delivery's
   * x-delivery-count has reached the limit) counts as dead-lettered, not as a failure. Deliveries
   * the broker counts without a handler failure (a consumer that died before acking) are not seen.
   */
  private async handle(ch: Channel, sub: Subscription, msg: ConsumeMessage): Promise<void> {
    let event: DomainEvent;
    try {
      event = JSON.parse(msg.content.toString('utf8')) as DomainEvent;
    } catch {
      this.opts.log.error({ consumer: sub.name, messageId: msg.properties.messageId as unknown }, 'event is not JSON; dead-lettered');
      this.opts.recorder?.deadLettered(sub.name);
      this.settle(() => ch.nack(msg, false, false));
      return;
    }
    try {
      await this.runHeld(ch, sub, event);
      this.opts.recorder?.consumed(sub.name);
      this.settle(() => ch.ack(msg));
    } catch (err) {
      const poison = isPoisonMessage(err);
      const deliveries = Number((msg.properties.headers)?.['x-delivery-count'] ?? 0);
      // The broker dead-letters a requeued message whose count goes past x-delivery-limit.
      const lastDelivery = deliveries >= (this.opts.deliveryLimit ?? 5);
      if (poison || lastDelivery) this.opts.recorder?.deadLettered(sub.name);
      else this.opts.recorder?.failed(sub.name);
      this.opts.log[poison ? 'error' : 'warn'](
        { consumer: sub.name, eventId: event.id, type: event.type, deliveries: deliveries + 1, err: errorMessage(err) },
        poison ? 'event rejected as poison; dead-lettered' : 'event handler failed; requeued after a backoff',
      );
      // The backoff spaces out redeliveries; the delivery the broker will dead-letter skips it.
      if (!poison && !lastDelivery) {
        await new Promise((r) => setTimeout(r, backoffMs(deliveries + 1, { baseMs: this.opts.retryBaseMs ?? 200, maxMs: 30_000 })));
      }
      this.settle(() => ch.nack(msg, false, !poison));
    }
  }

  /**
   * Runs the handler; while it fails because the database is unavailable, runs it again after a
   * backoff, holding the delivery (unacked) rather than requeueing it: an outage of the database
   * is not the event's fault, and requeueing would spend the message's deliveries in seconds and
   * dead-letter it before the database is back. The hold ends, and the failure is the caller's,
   * when the handler fails otherwise, when outageHoldMs has passed, when the bus is closing, or
   * when the channel is gone (the broker has requeued the delivery for another consumer).
   */
  private async runHeld(ch: Channel, sub: Subscription, event: DomainEvent): Promise<void> {
    const holdMs = this.opts.outageHoldMs ?? 300_000;
    const since = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await withConsumerSpan(sub.name, event, 'rabbitmq', () => sub.handler(event));
      } catch (err) {
        const hold = isDatabaseUnavailable(err) && !this.closed && this.consumerChannel === ch && Date.now() - since < holdMs;
        if (!hold) throw err;
        this.opts.recorder?.failed(sub.name);
        if (attempt === 1) {
          this.opts.log.warn({ consumer: sub.name, eventId: event.id, type: event.type, err: errorMessage(err) }, 'event handler: database unavailable; delivery held and retried');
        }
        await new Promise((r) => setTimeout(r, backoffMs(attempt, { baseMs: this.opts.retryBaseMs ?? 200, maxMs: 5_000 })));
      }
    }
  }

  /** The channel may be gone (broker restart): the broker then redelivers the message anyway. */
  private settle(fn: () => void): void {
    try {
      fn();
    } catch {
      // channel closed: unacked messages are requeued by the broker
    }
  }
}
