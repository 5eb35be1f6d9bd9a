// Prometheus metrics (prom-client). Each Metrics owns its Registry rather than the global one, so
// several app instances in one process (the tests) never collide. Served in the text format by
// the metrics server (metrics-server.ts) on its own port, never on the public one.
//
// To add metrics (events, replicas, ...): create them with `registers: [this.registry]` in a
// method or the constructor below, with bounded label values only (never ids, emails or raw
// URLs), and document the name in the README's Observability section.
//
// Every series also carries `service`, the process's service name (OTEL_SERVICE_NAME, 'task-api'
// unless set; `cluster start --split` names each service task-api-<module>), as a default label
// of the registry: the same name as the traces' service.name resource attribute.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ShardRecorder } from '../infra/shards/set.js';
import { RATE_LIMIT_POLICY_NAMES } from '../config.js';
import { operationOf, type QueryObserver } from '../infra/db/observe.js';
import { ROUTE_REASONS, type ReadRouteRecorder, type ReadTarget } from '../infra/db/router.js';
import { AUTH_FAILURE_REASONS, type AuthFailureReason, type AuthRecorder, type CacheStats, type ConsumeRecorder, type RateLimitStats, type RelayRecorder } from './recorders.js';
import { TASK_EVENT_TYPES, USER_EVENT_TYPES } from '../shared/events.js';

/** Seconds; a fast API: sub-millisecond to seconds. Used for HTTP and database durations. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The route label of requests no route matched (404s, router errors): never the raw URL. */
export const UNMATCHED_ROUTE = 'unmatched';

/** In-process counters kept by the HTTP plugins, read at scrape time. */
export interface AppStats {
  cacheStats?: CacheStats | undefined;
  rateLimitStats?: RateLimitStats | undefined;
}

/** The value of the `service` label when none is given (OTEL_SERVICE_NAME's default). */
export const DEFAULT_SERVICE_NAME = 'task-api';

export interface MetricsOptions {
  /** The `service` label of every series (config.tracing.serviceName). */
  service?: string;
}

interface Pool {
  max: number;
  inFlight: number;
}

export class Metrics {
  readonly registry = new Registry();
  /** Handed to the auth hook and AuthService (which know nothing of prom-client). */
  readonly auth: AuthRecorder;
  /** Handed to the outbox relay: events_published_total{type}, events_publish_failures_total. */
  readonly events: RelayRecorder;
  /**
   * Handed to the event bus (startEvents): events_consumed_total, events_consume_failures_total
   * and events_dead_lettered_total, by consumer (subscription name).
   */
  readonly consumers: Required<ConsumeRecorder>;

  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly dbDuration: Histogram<'operation'>;
  private readonly pools: Pool[] = [];
  private appStats: () => AppStats = () => ({});
  private outboxSource: (() => Promise<{ pending: number; oldestPendingAgeSeconds: number }>) | undefined;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    // Added to every series of this registry as it is exposed (default metrics included).
    this.registry.setDefaultLabels({ service: options.service ?? DEFAULT_SERVICE_NAME });
    collectDefaultMetrics({ register: this.registry });

    this.httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP requests by method, route template (or "unmatched") and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: DURATION_BUCKETS,
      registers,
    });

    this.dbDuration = new Histogram({
      name: 'db_query_duration_seconds',
      help: 'Database statements by operation (statement kind and main table, e.g. "select tasks")',
      labelNames: ['operation'],
      buckets: DURATION_BUCKETS,
      registers,
    });

    const stats = () => this.appStats();
    new Counter({
      name: 'cache_requests_total',
      help: 'Response cache lookups by result',
      labelNames: ['result'],
      registers,
      collect() {
        const s = stats().cacheStats;
        this.reset();
        this.inc({ result: 'hit' }, s?.hits ?? 0);
        this.inc({ result: 'miss' }, s?.misses ?? 0);
      },
    });
    new Counter({
      name: 'rate_limit_rejections_total',
      help: 'Requests answered 429, by the rate-limit policy that refused them',
      labelNames: ['policy'],
      registers,
      collect() {
        const rejected = stats().rateLimitStats?.rejected;
        this.reset();
        for (const policy of RATE_LIMIT_POLICY_NAMES) this.inc({ policy }, rejected?.[policy] ?? 0);
      },
    });

    const authFailures = new Counter({
      name: 'auth_failures_total',
      help: 'Authentication refused, by reason',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of AUTH_FAILURE_REASONS) authFailures.inc({ reason }, 0);
    const reuse = new Counter({
      name: 'refresh_token_reuse_total',
      help: 'Spent refresh tokens presented again (the token family is revoked)',
      registers,
    });
    this.auth = {
      failure: (reason: AuthFailureReason) => authFailures.inc({ reason }),
      refreshTokenReuse: () => reuse.inc(),
    };

    const published = new Counter({
      name: 'events_published_total',
      help: 'Events (task and account) published by the outbox relay and confirmed by the bus, by type',
      labelNames: ['type'],
      registers,
    });
    for (const type of [...TASK_EVENT_TYPES, ...USER_EVENT_TYPES]) published.inc({ type }, 0);
    const publishFailures = new Counter({
      name: 'events_publish_failures_total',
      help: 'Outbox relay batches that failed to publish (rolled back, retried with backoff)',
      registers,
    });
    this.events = {
      published: (type: string, count: number) => published.inc({ type }, count),
      publishFailure: () => publishFailures.inc(),
    };

    const consumed = new Counter({
      name: 'events_consumed_total',
      help: 'Task events a consumer of this process handled successfully (acked), by consumer',
      labelNames: ['consumer'],
      registers,
    });
    const consumeFailures = new Counter({
      name: 'events_consume_failures_total',
      help: 'Task event deliveries whose handler failed and that will be delivered again, by consumer',
      labelNames: ['consumer'],
      registers,
    });
    const deadLettered = new Counter({
      name: 'events_dead_lettered_total',
      help: 'Task event deliveries given up on (poison, not JSON, failed past the delivery limit), by consumer',
      labelNames: ['consumer'],
      registers,
    });
    this.consumers = {
      subscribed: (consumer: string) => {
        for (const c of [consumed, consumeFailures, deadLettered]) c.inc({ consumer }, 0);
      },
      consumed: (consumer: string) => consumed.inc({ consumer }),
      failed: (consumer: string) => consumeFailures.inc({ consumer }),
      deadLettered: (consumer: string) => deadLettered.inc({ consumer }),
    };
  }

  /**
   * outbox_pending and outbox_oldest_pending_age_seconds, read from the database at scrape time
   * (one indexed query over the pending rows). Registered once; a later call replaces the source.
   */
  /**
   * The shards of the tasks data (src/infra/shards/): the bucket map's version this instance
   * routes by, and the writes that found their bucket gone from the shard they went to: sent on
   * to its new shard ('rerouted'), or refused with 503 while a move fences it ('fenced').
   */
  shardRecorder(mapVersion: () => number | undefined): ShardRecorder {
    new Gauge({
      name: 'shard_map_version',
      help: 'The version of the bucket map this instance routes task queries by',
      registers: [this.registry],
      collect() {
        const v = mapVersion();
        if (v !== undefined) this.set(v);
      },
    });
    const moved = new Counter({
      name: 'shard_writes_moved_total',
      help: "Task writes that found their owner's bucket gone from the shard they went to, by outcome (rerouted to its new shard, or fenced: 503 during a move)",
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    for (const outcome of ['rerouted', 'fenced'] as const) moved.inc({ outcome }, 0);
    return { writeMoved: (outcome) => moved.inc({ outcome }) };
  }

  outboxGauges(read: () => Promise<{ pending: number; oldestPendingAgeSeconds: number }>): void {
    const first = this.outboxSource === undefined;
    this.outboxSource = read;
    if (!first) return;
    const source = () => this.outboxSource!();
    let last: Promise<{ pending: number; oldestPendingAgeSeconds: number } | undefined> | undefined;
    // Both gauges are collected in one scrape: share one query.
    const stats = () => {
      last ??= source()
        .catch(() => undefined)
        .finally(() => setTimeout(() => (last = undefined), 100).unref());
      return last;
    };
    new Gauge({
      name: 'outbox_pending',
      help: 'Events written to the outbox and not yet published',
      registers: [this.registry],
      async collect() {
        const s = await stats();
        if (s) this.set(s.pending);
      },
    });
    new Gauge({
      name: 'outbox_oldest_pending_age_seconds',
      help: 'Age of the oldest unpublished event in the outbox (0 when none)',
      registers: [this.registry],
      async collect() {
        const s = await stats();
        if (s) this.set(s.oldestPendingAgeSeconds);
      },
    });
  }

  /** One finished HTTP request; `route` is the route template or UNMATCHED_ROUTE. */
  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    this.httpDuration.observe({ method, route, status_code: String(statusCode) }, seconds);
  }

  /** Where the app's in-process stats are read at scrape time (set by the metrics plugin). */
  readAppStats(source: () => AppStats): void {
    this.appStats = source;
  }

  /**
   * A QueryObserver for a postgres.js pool of `poolMax` connections (DatabaseOptions.observers):
   * times every statement into db_query_duration_seconds, and derives the pool gauges.
   *
   * postgres.js exposes no pool statistics, so the gauges are derived from the statements in
   * flight that this observer counts (started, not yet settled), against DATABASE_POOL_MAX:
   *   in_use  = min(in flight, max)
   *   waiting = max(0, in flight - max)  (statements queued for a connection)
   *   idle    = max - in_use             (free capacity: postgres.js opens connections lazily,
   *                                       so some of these may not be open yet)
   * A connection held by a transaction between two of its statements counts as idle here, so
   * in_use is a lower bound. Several pools (calls) add up.
   */
  databaseObserver(poolMax: number): QueryObserver {
    if (this.pools.length === 0) this.registerPoolGauges();
    const pool: Pool = { max: poolMax, inFlight: 0 };
    this.pools.push(pool);
    return (text) => {
      const operation = operationOf(text);
      const start = performance.now();
      pool.inFlight++;
      let settled = false;
      return () => {
        if (settled) return;
        settled = true;
        pool.inFlight--;
        this.dbDuration.observe({ operation }, (performance.now() - start) / 1000);
      };
    };
  }

  /**
   * Handed to the read/write router (DATABASE_READ_URLS): db_replica_up and
   * db_replica_lag_seconds per replica (host:port), db_reads_routed_total by target and reason.
   * One recorder per process: the main database's replicas and every shard's report to it.
   */
  readRouting(): ReadRouteRecorder {
    return (this.routing ??= this.newReadRouting());
  }

  private routing: ReadRouteRecorder | undefined;

  private newReadRouting(): ReadRouteRecorder {
    const registers = [this.registry];
    const up = new Gauge({
      name: 'db_replica_up',
      help: 'Whether the read replica answers its polls and is a standby (1) or not (0)',
      labelNames: ['replica'],
      registers,
    });
    const lag = new Gauge({
      name: 'db_replica_lag_seconds',
      help: "How far the read replica's replayed WAL is behind the primary, in seconds (absent while it is down)",
      labelNames: ['replica'],
      registers,
    });
    const routed = new Counter({
      name: 'db_reads_routed_total',
      help: 'Reads routed by the read/write router, by target (primary or replica) and reason',
      labelNames: ['target', 'reason'],
      registers,
    });
    for (const target of Object.keys(ROUTE_REASONS) as ReadTarget[]) {
      for (const reason of ROUTE_REASONS[target]) routed.inc({ target, reason }, 0);
    }
    return {
      routed: (target, reason) => routed.inc({ target, reason }),
      replica: (replica, isUp, lagSeconds) => {
        up.set({ replica }, isUp ? 1 : 0);
        if (lagSeconds === undefined) lag.remove({ replica });
        else lag.set({ replica }, lagSeconds);
      },
    };
  }

  private registerPoolGauges(): void {
    const pools = this.pools;
    new Gauge({
      name: 'db_pool_connections',
      help: 'Database pool connections by state, derived from statements in flight (postgres.js has no pool stats)',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        let inUse = 0;
        let idle = 0;
        let waiting = 0;
        for (const p of pools) {
          const used = Math.min(p.inFlight, p.max);
          inUse += used;
          idle += p.max - used;
          waiting += Math.max(0, p.inFlight - p.max);
        }
        this.set({ state: 'in_use' }, inUse);
        this.set({ state: 'idle' }, idle);
        this.set({ state: 'waiting' }, waiting);
      },
    });
    new Gauge({
      name: 'db_pool_max',
      help: 'Database pool size (DATABASE_POOL_MAX)',
      registers: [this.registry],
      collect() {
        this.set(pools.reduce((n, p) => n + p.max, 0));
      },
    });
  }
}
