// The one retry-delay formula: exponential growth from a base, capped, with jitter. Every retry
// loop uses it (relay, buses, consumer reconnects, webhook and email deliveries).

export interface BackoffPolicy {
  /** The delay before the first retry, before jitter. */
  baseMs: number;
  /** No delay is longer than this, before jitter. */
  maxMs: number;
  /**
   * 'full' (the default): a random delay from 0 up to the exponential one, so that clients that
   * failed together do not retry together (AWS Architecture Blog, "Exponential Backoff And
   * Jitter"); 'spread': within 20 % either side of it; 'none': exactly it.
   */
  jitter?: 'full' | 'spread' | 'none';
}

/** The delay before retry number `attempt` (1 for the first): min(maxMs, baseMs * 2^(attempt-1)), jittered. */
export function backoffMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  // The exponent stops growing once the cap is passed anyway (2^1024 is Infinity, and 0 x Infinity NaN).
  const exponential = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(64, Math.max(0, attempt - 1)));
  switch (policy.jitter ?? 'full') {
    case 'full':
      return Math.floor(random() * exponential);
    case 'spread':
      return exponential * (0.8 + random() * 0.4);
    case 'none':
      return exponential;
  }
}
