// What deploy/monitoring relies on, for its two test files: monitoring.test.ts (the files read as
// text, promtool) and monitoring.e2e.test.ts (a real Prometheus scraping the built server).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MONITORING_DIR = path.join(fileURLToPath(new URL('../..', import.meta.url)), 'deploy', 'monitoring');

/** The event side's metrics (outbox relay and consumers). */
export const EVENT_METRICS = [
  'outbox_pending',
  'outbox_oldest_pending_age_seconds',
  'events_published_total',
  'events_publish_failures_total',
  'events_consumed_total',
  'events_consume_failures_total',
  'events_dead_lettered_total',
];

/** task-api's own counters and gauges, besides its histograms and the event side's. */
export const SERVICE_METRICS = [
  'db_pool_connections',
  'db_pool_max',
  'cache_requests_total',
  'rate_limit_rejections_total',
  'auth_failures_total',
  'refresh_token_reuse_total',
];

/** Every metric some panel of the Grafana dashboard must show. */
export const DASHBOARD_METRICS = [
  'http_request_duration_seconds_count',
  'http_request_duration_seconds_bucket',
  'db_query_duration_seconds_bucket',
  ...SERVICE_METRICS,
  'process_resident_memory_bytes',
  'process_cpu_seconds_total',
  'nodejs_eventloop_lag_seconds',
  ...EVENT_METRICS,
];

export interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
export interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name: string; type: string; query?: string | { query: string }; datasource?: { uid?: string } }[] };
}

/** deploy/monitoring/grafana/task-api.json. */
export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(path.join(MONITORING_DIR, 'grafana', 'task-api.json'), 'utf8')) as Dashboard;
}

/** The panels, those inside rows included. */
export function allPanels(panels: Panel[] = []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels)]);
}
