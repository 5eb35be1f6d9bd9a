// The event bus port. The relay publishes through it (publish resolves only once every event is
// confirmed); consumers subscribe a TaskEventHandler under a name. Two adapters: RabbitMQ
// (rabbitmq.ts, with AMQP_URL) and in process (below, the embedded default).
import type { TaskEvent, TaskEventHandler, TaskEventType } from '../../shared/events.js';
import { isPoisonMessage } from '../../shared/poison.js';

export interface SubscribeOptions {
  /** Routing keys to receive (RabbitMQ topic patterns); every task event by default. */
  types?: (TaskEventType | 'task.*' | '#')[];
}

export interface EventBus {
  readonly kind: 'rabbitmq' | 'in-process';
  /** Resolves when the broker has confirmed every event (in process: when every handler has run). */
  publish(events: TaskEvent[]): Promise<void>;
  /**
   * Registers a consumer. `name` identifies it: on RabbitMQ, its durable queue
   * `<exchange>.<name>` (dead letters in `<exchange>.<name>.dead`), shared by every instance
   * that runs it. The handler must be idempotent by event id: delivery is at least once.
   * Register before start().
   */
  subscribe(name: string, handler: TaskEventHandler, options?: SubscribeOptions): void;
  /** Starts consuming (RabbitMQ: connects, declares, and reconnects with backoff). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface BusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Counts what consumers do with deliveries (the Metrics registry implements it; the buses know
 * nothing of prom-client). `consumer` is the subscription name: a bounded label.
 */
export interface ConsumeRecorder {
  /** Registered (counters start at 0). */
  subscribed?(consumer: string): void;
  /** The handler succeeded (RabbitMQ: acked). */
  consumed(consumer: string): void;
  /** The handler failed and the event will be delivered again. */
  failed(consumer: string): void;
  /** Given up: poison, not JSON, or failed past the delivery limit (the dead-letter queue). */
  deadLettered(consumer: string): void;
}

const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

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

/**
 * Embedded mode (no AMQP_URL): the relay hands each batch from the outbox to the handlers
 * registered in this process, in order, and marks it published once they have run. A handler
 * that throws is retried once at once; a poison event, or a second failure, is logged and
 * counted as dead (the in-process dead-letter queue) so that one bad event cannot stall the
 * outbox. A crash before the batch is marked published delivers it again (at least once).
 */
export class InProcessEventBus implements EventBus {
  readonly kind = 'in-process' as const;
  private readonly handlers: { name: string; handler: TaskEventHandler; types: string[] }[] = [];
  /** Events a handler gave up on, by consumer name (tests, logs). */
  readonly dead: { consumer: string; eventId: string; error: string }[] = [];

  constructor(
    private readonly log?: BusLogger,
    private readonly recorder?: ConsumeRecorder,
  ) {}

  subscribe(name: string, handler: TaskEventHandler, options: SubscribeOptions = {}): void {
    this.handlers.push({ name, handler, types: options.types ?? ['#'] });
    this.recorder?.subscribed?.(name);
  }

  async start(): Promise<void> {}

  async publish(events: TaskEvent[]): Promise<void> {
    for (const event of events) {
      for (const h of this.handlers) {
        if (!h.types.some((t) => topicMatches(t, event.type))) continue;
        await this.deliver(h.name, h.handler, event);
      }
    }
  }

  private async deliver(name: string, handler: TaskEventHandler, event: TaskEvent): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await handler(event);
        this.recorder?.consumed(name);
        return;
      } catch (err) {
        if (!isPoisonMessage(err) && attempt < 2) {
          this.recorder?.failed(name);
          continue;
        }
        this.recorder?.deadLettered(name);
        this.dead.push({ consumer: name, eventId: event.id, error: errText(err) });
        this.log?.error({ consumer: name, eventId: event.id, type: event.type, err: errText(err) }, 'event handler failed; event dropped');
        return;
      }
    }
  }

  async close(): Promise<void> {}
}
