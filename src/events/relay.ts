// The outbox relay: claims pending events (oldest first, FOR UPDATE SKIP LOCKED, so several
// relays share the work without overlap), publishes them, and marks them published only after
// the bus has confirmed them, in the claiming transaction. A failure rolls the batch back: the
// rows stay pending and the next attempt waits longer (exponential backoff). Published rows
// older than the retention are pruned. A local write can nudge() the loop awake; without
// nudges it polls every pollMs.
import type { DomainEvent } from '../shared/events.js';
import type { RelayRecorder } from '../observability/recorders.js';
import type { BusLogger } from './bus.js';
import type { OutboxRepository, PendingEvent } from './outbox.js';
import { backoffMs } from '../shared/backoff.js';
import { errorMessage } from '../shared/errors.js';

export interface RelayOptions {
  outbox: OutboxRepository;
  publish: (events: DomainEvent[]) => Promise<void>;
  log: BusLogger;
  recorder?: RelayRecorder | undefined;
  pollMs: number;
  batchSize: number;
  retentionHours: number;
  /** false on PGlite: one connection, one relay, no claiming transaction (see OutboxRepository.claim). */
  locking?: boolean;
  /** Upper bound of the backoff after failures. */
  maxBackoffMs?: number;
  /** How often pruning runs. */
  pruneEveryMs?: number;
}

export class OutboxRelay {
  private running = false;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private nudged = false;
  private failures = 0;
  private lastPrune = 0;

  constructor(private readonly opts: RelayOptions) {}

  /** Publishes one batch; returns how many events were published. Throws when publishing failed. */
  async runOnce(): Promise<number> {
    try {
      return await this.opts.outbox.claim(this.opts.batchSize, (rows) => this.publish(rows), this.opts.locking ?? true);
    } catch (err) {
      this.opts.recorder?.publishFailure();
      throw err;
    }
  }

  /** Runs batches until nothing is pending (bounded by `maxBatches`); returns the total published. */
  async drain(maxBatches = 1000): Promise<number> {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const n = await this.runOnce();
      total += n;
      if (n === 0) break;
    }
    return total;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.loop = this.run();
  }

  /** Wakes the loop now (after a local write); harmless when it is busy or stopped. */
  nudge(): void {
    this.nudged = true;
    // A nudge during a failure backoff does not cut it short: the broker needs the time.
    if (this.failures === 0) this.wake?.();
  }

  /** Stops claiming; resolves once the batch in flight (if any) has committed or rolled back. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    this.running = false;
    this.loop = undefined;
  }

  private async publish(rows: PendingEvent[]): Promise<void> {
    await this.opts.publish(rows.map((r) => r.payload));
    if (this.opts.recorder) {
      const byType = new Map<string, number>();
      for (const r of rows) byType.set(r.type, (byType.get(r.type) ?? 0) + 1);
      for (const [type, n] of byType) this.opts.recorder.published(type, n);
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let delay = this.opts.pollMs;
      try {
        this.nudged = false;
        const n = await this.runOnce();
        if (this.failures > 0) this.opts.log.info({ afterFailures: this.failures }, 'outbox relay publishing again');
        this.failures = 0;
        if (n >= this.opts.batchSize) delay = 0; // more is waiting
        await this.maybePrune();
      } catch (err) {
        this.failures++;
        delay = backoffMs(this.failures + 1, { baseMs: this.opts.pollMs, maxMs: this.opts.maxBackoffMs ?? 30_000, jitter: 'none' });
        this.opts.log.warn({ err: errorMessage(err), failures: this.failures, retryInMs: delay }, 'outbox relay: publish failed, events stay pending');
      }
      if (this.stopping) break;
      // A nudge that came while the batch ran means a write may have been missed: go again.
      if (delay > 0 && !(this.nudged && this.failures === 0)) await this.sleep(delay);
    }
  }

  private async maybePrune(): Promise<void> {
    const every = this.opts.pruneEveryMs ?? 60_000;
    if (Date.now() - this.lastPrune < every) return;
    this.lastPrune = Date.now();
    try {
      const n = await this.opts.outbox.prune(this.opts.retentionHours);
      if (n > 0) this.opts.log.info({ pruned: n }, 'outbox: published events pruned');
    } catch (err) {
      this.opts.log.warn({ err: errorMessage(err) }, 'outbox prune failed');
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
