// What the load test measures: per scenario step and overall, the number of requests, the
// failures (network errors, timeouts and non-2xx answers; 429 counted apart as well), and a
// latency histogram of bounded memory whatever the number of requests.

/**
 * Log-linear histogram in the manner of HdrHistogram: values in microseconds, exact below 256 µs,
 * then 128 linear sub-buckets per power of two, so any recorded value is off by less than 0.8%.
 * Up to 2^36 µs (19 hours); about 4,000 counters per histogram.
 */
export class Histogram {
  private static readonly SUB_BITS = 7;
  private static readonly SUB = 1 << Histogram.SUB_BITS; // 128
  private static readonly MAX_SHIFT = 36 - Histogram.SUB_BITS;
  private readonly counts = new Float64Array(2 * Histogram.SUB + Histogram.MAX_SHIFT * Histogram.SUB);
  total = 0;
  private sumUs = 0;
  private minUs = Infinity;
  private maxUs = 0;

  record(ms: number): void {
    const us = Math.min(2 ** 36 - 1, Math.max(0, Math.round(ms * 1000)));
    this.counts[Histogram.indexOf(us)]! += 1;
    this.total += 1;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  private static indexOf(us: number): number {
    if (us < 2 * Histogram.SUB) return us;
    const shift = Math.floor(Math.log2(us)) - Histogram.SUB_BITS;
    return 2 * Histogram.SUB + (shift - 1) * Histogram.SUB + (Math.floor(us / 2 ** shift) - Histogram.SUB);
  }

  /** The middle of bucket `index`, in microseconds. */
  private static valueOf(index: number): number {
    if (index < 2 * Histogram.SUB) return index;
    const rel = index - 2 * Histogram.SUB;
    const shift = Math.floor(rel / Histogram.SUB) + 1;
    const lower = (Histogram.SUB + (rel % Histogram.SUB)) * 2 ** shift;
    return lower + (2 ** shift - 1) / 2;
  }

  /** The p-th percentile (0 < p <= 100) in milliseconds; undefined when nothing was recorded. */
  percentile(p: number): number | undefined {
    if (this.total === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxUs, Math.max(this.minUs, Histogram.valueOf(i))) / 1000;
    }
    return this.maxUs / 1000;
  }

  summary(): LatencySummary | null {
    if (this.total === 0) return null;
    const round = (v: number | undefined) => Math.round((v ?? 0) * 100) / 100;
    return {
      min: round(this.minUs / 1000),
      avg: round(this.sumUs / this.total / 1000),
      p50: round(this.percentile(50)),
      p90: round(this.percentile(90)),
      p95: round(this.percentile(95)),
      p99: round(this.percentile(99)),
      max: round(this.maxUs / 1000),
    };
  }
}

export interface LatencySummary {
  min: number;
  avg: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

/** How one request ended: an HTTP status, or no answer at all. */
export type Outcome = { status: number; ms: number } | { error: 'network' | 'timeout'; message: string };

const MAX_ERROR_SAMPLES = 5;

export class StepStats {
  count = 0;
  errors = 0;
  rateLimited = 0;
  networkErrors = 0;
  timeouts = 0;
  readonly statuses = new Map<number, number>();
  /** A few distinct failure descriptions, to say why without keeping every one. */
  readonly errorSamples: string[] = [];
  readonly latency = new Histogram();

  record(outcome: Outcome): void {
    this.count += 1;
    if ('status' in outcome) {
      this.statuses.set(outcome.status, (this.statuses.get(outcome.status) ?? 0) + 1);
      // Latency of every answered request, failed or not; requests without an answer have none.
      this.latency.record(outcome.ms);
      if (outcome.status < 200 || outcome.status > 299) {
        this.errors += 1;
        if (outcome.status === 429) this.rateLimited += 1;
        this.sample(`HTTP ${outcome.status}`);
      }
      return;
    }
    this.errors += 1;
    if (outcome.error === 'timeout') this.timeouts += 1;
    else this.networkErrors += 1;
    this.sample(`${outcome.error}: ${outcome.message}`);
  }

  private sample(text: string): void {
    if (this.errorSamples.length < MAX_ERROR_SAMPLES && !this.errorSamples.includes(text)) this.errorSamples.push(text);
  }

  toJSON(elapsedSeconds: number): StepReport {
    return {
      count: this.count,
      errors: this.errors,
      errorRate: this.count === 0 ? null : round4(this.errors / this.count),
      rateLimited: this.rateLimited,
      networkErrors: this.networkErrors,
      timeouts: this.timeouts,
      statuses: Object.fromEntries([...this.statuses.entries()].sort(([a], [b]) => a - b)),
      rps: elapsedSeconds > 0 ? Math.round((this.count / elapsedSeconds) * 100) / 100 : 0,
      latencyMs: this.latency.summary(),
      errorSamples: [...this.errorSamples],
    };
  }
}

export interface StepReport {
  count: number;
  errors: number;
  /** errors / count; null when no request was made. */
  errorRate: number | null;
  rateLimited: number;
  networkErrors: number;
  timeouts: number;
  statuses: Record<string, number>;
  rps: number;
  latencyMs: LatencySummary | null;
  errorSamples: string[];
}

const round4 = (v: number) => Math.round(v * 10000) / 10000;

/** Every request of the run: overall, per step, and per second of the run (bounded by its hard limit). */
export class Recorder {
  readonly overall = new StepStats();
  readonly steps = new Map<string, StepStats>();
  private readonly timeline: { requests: number; errors: number }[] = [];
  private readonly maxSeconds: number;
  /** Requests aborted by the hard time limit: neither successes nor failures, just reported. */
  aborted = 0;

  constructor(
    stepNames: readonly string[],
    private readonly startedAt: number,
    hardLimitSeconds: number,
  ) {
    for (const name of stepNames) this.steps.set(name, new StepStats());
    this.maxSeconds = Math.ceil(hardLimitSeconds) + 1;
  }

  record(step: string, outcome: Outcome): void {
    let stats = this.steps.get(step);
    if (!stats) {
      stats = new StepStats();
      this.steps.set(step, stats);
    }
    stats.record(outcome);
    this.overall.record(outcome);
    const second = Math.min(this.maxSeconds, Math.max(0, Math.floor((performance.now() - this.startedAt) / 1000)));
    while (this.timeline.length <= second) this.timeline.push({ requests: 0, errors: 0 });
    const slot = this.timeline[second]!;
    slot.requests += 1;
    if (!('status' in outcome) || outcome.status < 200 || outcome.status > 299) slot.errors += 1;
  }

  perSecond(): { second: number; requests: number; errors: number }[] {
    return this.timeline.map((s, second) => ({ second, ...s }));
  }
}
