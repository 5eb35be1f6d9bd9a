// The event bus port. The relay publishes through it (publish resolves only once every event is
// confirmed); consumers subscribe an EventHandler under a name. Two adapters: RabbitMQ
// (rabbitmq.ts, with AMQP_URL) and in process (below, the embedded default).
import type { DomainEvent, EventHandler, DomainEventType } from '../shared/events.js';
import { isPoisonMessage } from '../shared/poison.js';
import type { ConsumeRecorder } from '../observability/recorders.js';
import { withConsumerSpan } from '../observability/trace-context.js';
import type { EventRetries } from './retries.js';
import { backoffMs } from '../shared/backoff.js';
import { errorMessage } from '../shared/errors.js';

export interface SubscribeOptions {
  /** Routing keys to receive (RabbitMQ topic patterns); every event by default. */
  types?: (DomainEventType | 'task.*' | 'user.*' | '#')[];
}

export interface EventBus {
  readonly kind: 'rabbitmq' | 'in-process';
  /** Resolves when the broker has confirmed every event (in process: when every handler has run). */
  publish(events: DomainEvent[]): Promise<void>;
  /**
   * Registers a consumer. `name` identifies it: on RabbitMQ, its durable queue
   * `<exchange>.<name>` (dead letters in `<exchange>.<name>.dead`), shared by every instance
   * that runs it. The handler must be idempotent by event id: delivery is at least once.
   * Register before start().
   */
  subscribe(name: string, handler: EventHandler, options?: SubscribeOptions): void;
  /** Starts consuming (RabbitMQ: connects, declares, and reconnects with backoff). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface BusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Does a topic pattern (`*` one word, `#` any) match a routing key? */
export function topicMatches(pattern: string, key: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('.')
      .map((w) => (w === '#' ? '.*' : w === '*' ? '[^.]+' : w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('\\.')}$`,
  );
  return re.test(key);
}

/** Where the in-process bus keeps failed deliveries (EventRetries, on the database). */
export type RetryStore = Pick<EventRetries, 'recordFailure' | 'claimDue' | 'succeeded'>;

export interface InProcessBusOptions {
  retries: RetryStore;
  log?: BusLogger | undefined;
  recorder?: ConsumeRecorder | undefined;
  /** Deliveries of one event to one consumer before it is dead-lettered (EVENTS_DELIVERY_LIMIT). */
  deliveryLimit?: number;
  /** Backoff of the n-th retry: a random delay up to min(maxBackoffMs, retryBaseMs * 2^(n-1)). */
  retryBaseMs?: number;
  maxBackoffMs?: number;
  /** How often the retry loop looks for due retries. */
  retryPollMs?: number;
}

const LEASE_MS = 60_000;
/** Users whose events are delivered side by side within one batch. */
const DELIVERY_CONCURRENCY = 8;
const RETRY_BATCH = 50;

/**
 * Embedded mode (no AMQP_URL): the relay hands each batch from the outbox to the handlers
 * registered in this process, in order, and marks it published once they have run. A handler
 * that throws does not hold up the others: its failure is stored in event_retries (before the
 * batch counts as published, so a crash cannot lose it) and a retry loop runs it again with
 * exponential backoff and full jitter, up to the delivery limit; then it is a dead letter in the
 * same table (`task-api dead-letters`). A poison event is a dead letter at once. A crash before
 * the batch is marked published delivers it again (at least once), as with RabbitMQ.
 */
export class InProcessEventBus implements EventBus {
  readonly kind = 'in-process' as const;
  private readonly handlers = new Map<string, { handler: EventHandler; types: string[] }>();
  private readonly limit: number;
  private timer: NodeJS.Timeout | undefined;
  private retrying: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: InProcessBusOptions) {
    this.limit = opts.deliveryLimit ?? 5;
  }

  subscribe(name: string, handler: EventHandler, options: SubscribeOptions = {}): void {
    this.handlers.set(name, { handler, types: options.types ?? ['#'] });
    this.opts.recorder?.subscribed?.(name);
  }

  async start(): Promise<void> {
    this.closed = false;
    // A process without consumers (an auth or tasks service) has no retries of its own to run.
    if (this.handlers.size > 0) this.schedule();
  }

  /**
   * Delivers a batch: one user's events in order, different users' side by side (at most
   * DELIVERY_CONCURRENCY at once), as a RabbitMQ consumer with a prefetch handles several messages
   * at a time. Resolves when every delivery ran or had its failure stored; rejects (the batch stays
   * pending) when a failure could not be stored.
   */
  async publish(events: DomainEvent[]): Promise<void> {
    const byUser = new Map<string, DomainEvent[]>();
    for (const e of events) {
      const list = byUser.get(e.userId);
      if (list) list.push(e);
      else byUser.set(e.userId, [e]);
    }
    const queues = [...byUser.values()];
    const lane = async () => {
      for (let queue = queues.shift(); queue; queue = queues.shift()) {
        for (const event of queue) {
          for (const [name, h] of this.handlers) {
            if (h.types.some((t) => topicMatches(t, event.type))) await this.deliver(name, h.handler, event, 0);
          }
        }
      }
    };
    const results = await Promise.allSettled(Array.from({ length: Math.min(DELIVERY_CONCURRENCY, queues.length) }, lane));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Runs the retries due now (the loop calls it; tests may too). Returns how many ran. */
  async retryDue(): Promise<number> {
    const due = await this.opts.retries.claimDue([...this.handlers.keys()], RETRY_BATCH, new Date(Date.now() + LEASE_MS));
    for (const r of due) {
      const h = this.handlers.get(r.consumer);
      if (h) await this.deliver(r.consumer, h.handler, r.event, r.attempts);
    }
    return due.length;
  }

  /** One delivery; `before` deliveries happened already. Throws only when the failure could not be stored. */
  private async deliver(name: string, handler: EventHandler, event: DomainEvent, before: number): Promise<void> {
    const attempts = before + 1;
    try {
      await withConsumerSpan(name, event, 'in-process', () => handler(event));
      this.opts.recorder?.consumed(name);
      if (before > 0) await this.opts.retries.succeeded(name, event.id);
      return;
    } catch (err) {
      const poison = isPoisonMessage(err);
      const dead = poison || attempts >= this.limit;
      const context = { consumer: name, eventId: event.id, type: event.type, attempts, err: errorMessage(err) };
      if (dead) {
        await this.opts.retries.recordFailure(name, event, attempts, errorMessage(err), { dead: poison ? 'poison' : 'failed' });
        this.opts.recorder?.deadLettered(name);
        this.opts.log?.error(context, poison ? 'event rejected as poison; dead-lettered' : 'event handler failed past the delivery limit; dead-lettered');
      } else {
        const delay = backoffMs(attempts, { baseMs: this.opts.retryBaseMs ?? 200, maxMs: this.opts.maxBackoffMs ?? 30_000 });
        await this.opts.retries.recordFailure(name, event, attempts, errorMessage(err), { at: new Date(Date.now() + delay) });
        this.opts.recorder?.failed(name);
        this.opts.log?.warn(context, 'event handler failed; retry scheduled');
      }
    }
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.retrying = this.retryDue().then(
        () => undefined,
        (err: unknown) => this.opts.log?.warn({ err: errorMessage(err) }, 'event retries: claiming failed'),
      );
      void this.retrying.then(() => this.schedule());
    }, this.opts.retryPollMs ?? 500);
    this.timer.unref();
  }

  /** Stops the retry loop, after the round in flight (its leases end; nothing is lost). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.retrying;
  }
}
