// A bounded wait for a database connection (DATABASE_URL pool_timeout). postgres.js has no pool
// timeout: past `max` busy connections it pipelines statements onto busy ones, or queues them
// for as long as it takes. With a pool timeout the gate admits at most `max` units of work at
// once (a statement outside a transaction, or a whole transaction) and fails a unit that waited
// longer than the timeout, so a saturated pool turns into quick 503s instead of requests that
// hang until the client gives up.

export class PoolTimeoutError extends Error {
  readonly code = 'POOL_TIMEOUT';
  constructor(timeoutMs: number) {
    super(`no database connection became free within ${timeoutMs} ms (pool_timeout)`);
    this.name = 'PoolTimeoutError';
  }
}

interface Waiter {
  admit(): void;
  timer: NodeJS.Timeout;
}

export class PoolGate {
  private inUse = 0;
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly max: number,
    readonly timeoutMs: number,
  ) {}

  /** Units admitted and not yet released, and units waiting: what the pool gauges show. */
  get stats(): { inUse: number; waiting: number } {
    return { inUse: this.inUse, waiting: this.waiters.length };
  }

  /** Resolves with the release function once a connection is free; rejects after timeoutMs. */
  acquire(): Promise<() => void> {
    if (this.inUse < this.max && this.waiters.length === 0) {
      this.inUse++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        admit: () => {
          clearTimeout(waiter.timer);
          this.inUse++;
          resolve(this.releaser());
        },
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new PoolTimeoutError(this.timeoutMs));
        }, this.timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse--;
      this.waiters.shift()?.admit();
    };
  }
}
