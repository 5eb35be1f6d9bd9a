// `task-api healthcheck [--metrics]`: the container image's HEALTHCHECK (deploy/docker/Dockerfile).
// Slim images have no curl, and a probe in the CLI reads PORT/HOST (or METRICS_*) from the same
// validated configuration the server started with, so the two cannot disagree.
//
// It asks for liveness (/health/live), not readiness (/health): a container whose database is
// away is still a healthy process, and an orchestrator that restarted every instance whenever
// PostgreSQL failed over would turn a short outage into a long one. Readiness is for the load
// balancer (NGINX's retries, Kubernetes' readinessProbe). `--metrics` probes the metrics port
// instead: the `worker` serves no API, only /metrics.
import type { Config } from '../config.js';

const TIMEOUT_MS = 3000;

/** The address a probe inside the container reaches a server on: loopback for a wildcard listen. */
export function probeHost(listen: string): string {
  if (listen === '0.0.0.0' || listen === '::' || listen === '') return '127.0.0.1';
  return listen.includes(':') ? `[${listen}]` : listen;
}

export function healthcheckUrl(config: Config, target: 'api' | 'metrics'): string {
  return target === 'api'
    ? `http://${probeHost(config.http.host)}:${config.http.port}/health/live`
    : `http://${probeHost(config.metrics.host)}:${config.metrics.port}/metrics`;
}

/** 0 when the server answers 2xx within 3 s, else 1 with the reason on stderr. */
export async function healthcheck(config: Config, args: string[]): Promise<number> {
  if (args.length > 1 || (args.length === 1 && args[0] !== '--metrics')) {
    console.error('usage: task-api healthcheck [--metrics]');
    return 2;
  }
  const target = args[0] === '--metrics' ? 'metrics' : 'api';
  if (target === 'metrics' && !config.metrics.enabled) {
    console.error('healthcheck --metrics: METRICS_ENABLED is false, there is no metrics port to probe');
    return 1;
  }
  const url = healthcheckUrl(config, target);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    await res.arrayBuffer();
    if (res.ok) return 0;
    console.error(`healthcheck: ${url} answered ${res.status}`);
  } catch (err) {
    console.error(`healthcheck: ${url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return 1;
}
