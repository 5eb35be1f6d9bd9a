// deploy/monitoring against the real thing: the built server on free loopback ports, and a real
// Prometheus (Debian's prometheus package; .ci/run installs it) started on a free port with
// deploy/monitoring/prometheus.yml, its target pointed at the server's metrics port, scraping every
// second, and alerts.yml loaded. After some API traffic, Prometheus must hold the request
// histogram with route templates as labels, every rule must evaluate cleanly, and every query of
// the Grafana dashboard must run and return data.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { uniqueEmail } from '../helpers/app.js';
import { allPanels, DASHBOARD_METRICS, loadDashboard, MONITORING_DIR } from '../helpers/monitoring.js';
import { freePort, jsonRequest, startServer, type ServerProcess } from '../helpers/process.js';
import { serverFixture, servicesEnv } from '../helpers/server-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Calls `probe` until it returns a value (not undefined), at most `seconds`; then the last error. */
async function eventually<T>(what: string, seconds: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${seconds} s${last instanceof Error ? `: ${last.message}` : ''}`);
    await sleep(250);
  }
}

/** deploy/monitoring/prometheus.yml with its example targets replaced by `target`, scraping every second. */
function testPrometheusConfig(source: string, target: string): string {
  const replace = (text: string, pattern: RegExp, by: string, expected: number) => {
    const found = text.match(pattern)?.length ?? 0;
    if (found !== expected) throw new Error(`prometheus.yml: expected ${expected} match(es) of ${String(pattern)}, found ${found}`);
    return text.replace(pattern, by);
  };
  let config = replace(source, /^(\s*(?:-\s*)?)targets: \[.*\]$/gm, `$1targets: ['${target}']`, 1);
  config = replace(config, /^(\s*)scrape_interval: 15s$/gm, '$1scrape_interval: 1s', 2);
  config = replace(config, /^(\s*)evaluation_interval: 15s$/gm, '$1evaluation_interval: 1s', 1);
  config = replace(config, /^(\s*)scrape_timeout: 10s$/gm, '$1scrape_timeout: 1s', 1);
  return config;
}

interface PrometheusProcess {
  url: string;
  proc: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

async function startPrometheus(configFile: string, dataDir: string): Promise<PrometheusProcess> {
  const port = await freePort();
  const proc = spawn('prometheus', [`--config.file=${configFile}`, `--storage.tsdb.path=${dataDir}`, `--web.listen-address=127.0.0.1:${port}`], {
    cwd: path.dirname(configFile),
    env: { PATH: process.env.PATH ?? '' },
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  let spawnError: Error | undefined;
  proc.once('error', (err) => {
    spawnError = err;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null && !spawnError) {
      proc.kill('SIGTERM');
      const killed = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killed);
    }
  };
  try {
    await eventually('Prometheus ready', 60, async () => {
      if (spawnError) throw new Error(`cannot run prometheus (apt-get install -y prometheus; bash .ci/run does it): ${spawnError.message}`);
      if (proc.exitCode !== null) throw new Error(`prometheus exited with ${proc.exitCode}:\n${out}`);
      const res = await fetch(`${url}/-/ready`);
      return res.ok ? true : undefined;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, proc, output: () => out, stop };
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(prometheus: PrometheusProcess, promql: string): Promise<Sample[]> {
  const res = await fetch(`${prometheus.url}/api/v1/query?${new URLSearchParams({ query: promql }).toString()}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error ?? res.status}`);
  return body.data!.result;
}

/** The PromQL of every panel of the Grafana dashboard, with its variables given values. */
function dashboardQueries(): { panel: string; expr: string }[] {
  return allPanels(loadDashboard().panels).flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      panel: p.title ?? '?',
      expr: (t.expr ?? '')
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$__range', '5m')
        .replaceAll('$job', 'task-api')
        .replaceAll('$service', '.*')
        .replaceAll('$instance', '.*'),
    })),
  );
}

const fixture = serverFixture('task-api-prometheus-');

describe('Prometheus scrapes task-api with deploy/monitoring', () => {
  it('collects route-template histograms, evaluates every rule and answers every dashboard query', { timeout: 240_000 }, async () => {
    let server: ServerProcess | undefined;
    let prometheus: PrometheusProcess | undefined;
    try {
      const workDir = fixture.dir;
      server = await startServer({
        ...servicesEnv(fixture.db),
        RATE_LIMIT_POINTS: '1000',
        SHUTDOWN_DRAIN_MS: '0',
        LOG_LEVEL: 'warn',
      });
      const metricsUrl = new URL(server.metricsUrl);
      expect(metricsUrl.hostname).toBe('127.0.0.1');
      const metricsAnswer = await eventually('GET /metrics on the metrics port', 30, async () => {
        const res = await fetch(metricsUrl);
        return res.ok ? res.text() : undefined;
      });
      expect(metricsAnswer).toContain('# TYPE http_request_duration_seconds histogram');

      // Prometheus with the repository's configuration and rules, pointed at this server.
      const config = testPrometheusConfig(await readFile(path.join(MONITORING_DIR, 'prometheus.yml'), 'utf8'), metricsUrl.host);
      await writeFile(path.join(workDir, 'prometheus.yml'), config);
      await copyFile(path.join(MONITORING_DIR, 'alerts.yml'), path.join(workDir, 'alerts.yml'));
      prometheus = await startPrometheus(path.join(workDir, 'prometheus.yml'), path.join(workDir, 'data'));

      // Traffic: ids in URLs, 404s on a route and off any route, auth failures, a reused refresh token.
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: uniqueEmail('prom'), password: 'prometheus password' });
      expect(reg.status).toBe(201);
      const token = reg.body!.accessToken as string;
      const created = await jsonRequest(`${server.url}/v1/tasks`, 'POST', { title: 'scraped by Prometheus' }, token);
      expect(created.status).toBe(201);
      const taskId = created.body!.id as string;
      for (let i = 0; i < 3; i++) expect((await jsonRequest(`${server.url}/v1/tasks/${taskId}`, 'GET', undefined, token)).status).toBe(200);
      expect((await jsonRequest(`${server.url}/v1/tasks/${randomUUID()}`, 'GET', undefined, token)).status).toBe(404);
      expect((await jsonRequest(`${server.url}/v1/tasks?status=todo`, 'GET', undefined, token)).status).toBe(200);
      expect((await jsonRequest(`${server.url}/v1/tasks`, 'GET')).status).toBe(401);
      expect((await jsonRequest(`${server.url}/no/such/${taskId}`, 'GET')).status).toBe(404);
      const refreshed = await jsonRequest(`${server.url}/v1/auth/refresh`, 'POST', { refreshToken: reg.body!.refreshToken });
      expect(refreshed.status).toBe(200);
      expect((await jsonRequest(`${server.url}/v1/auth/refresh`, 'POST', { refreshToken: reg.body!.refreshToken })).status).toBe(401);
      for (let i = 0; i < 5; i++) expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
      expect((await fetch(`${server.url}/health`)).status).toBe(200);

      // The request histogram reaches Prometheus, labelled with route templates.
      const expectedRoutes = ['/health/live', '/health', '/v1/auth/register', '/v1/auth/refresh', '/v1/tasks', '/v1/tasks/:id', 'unmatched'];
      const byRoute = await eventually('http_request_duration_seconds_count in Prometheus', 60, async () => {
        const result = await query(prometheus!, 'sum by (route) (http_request_duration_seconds_count{job="task-api"})');
        const routes = result.map((s) => s.metric.route ?? '');
        return expectedRoutes.every((r) => routes.includes(r)) ? result : undefined;
      });
      const routes = byRoute.map((s) => s.metric.route!);
      for (const route of routes) {
        expect(route).toMatch(/^(unmatched|\/[\w\-./:{}*]*)$/);
        expect(route).not.toContain(taskId);
        expect(route).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/);
      }
      expect(routes).not.toContain(`/v1/tasks/${taskId}`);
      const byId = await query(prometheus, 'sum(http_request_duration_seconds_count{job="task-api", route="/v1/tasks/:id", status_code="200"})');
      expect(Number(byId[0]?.value[1])).toBeGreaterThanOrEqual(3);
      const live = await query(prometheus, 'http_request_duration_seconds_count{route="/health/live"}');
      expect(live.length).toBeGreaterThan(0);
      expect(live[0]!.metric).toMatchObject({ job: 'task-api', service: 'task-api', instance: metricsUrl.host, method: 'GET', status_code: '200' });

      const up = await query(prometheus, 'up{job="task-api"}');
      expect(up.map((s) => [s.metric.instance, s.value[1]])).toEqual([[metricsUrl.host, '1']]);

      // Every metric and label value deploy/monitoring relies on is exported.
      const names = new Set(
        (await query(prometheus, 'group by (__name__) ({job="task-api"})')).map((s) => s.metric.__name__),
      );
      for (const name of [...DASHBOARD_METRICS, 'nodejs_heap_size_used_bytes', 'up']) {
        expect(names.has(name), `${name} is not scraped`).toBe(true);
      }
      const labelValues = async (promql: string, label: string) => (await query(prometheus!, promql)).map((s) => s.metric[label]).sort();
      expect(await labelValues('db_pool_connections{job="task-api"}', 'state')).toEqual(['idle', 'in_use', 'waiting']);
      expect(await labelValues('cache_requests_total{job="task-api"}', 'result')).toEqual(['hit', 'miss']);
      const buckets = await labelValues('http_request_duration_seconds_bucket{job="task-api", route="/health/live", status_code="200"}', 'le');
      expect(buckets).toContain('0.0005');
      expect(buckets).toContain('10');
      expect(buckets).toContain('+Inf');
      const reuse = await eventually('refresh_token_reuse_total = 1', 30, async () => {
        const r = await query(prometheus!, 'sum(refresh_token_reuse_total{job="task-api"})');
        return r[0]?.value[1] === '1' ? r : undefined;
      });
      expect(reuse[0]!.value[1]).toBe('1');

      // Every recording and alerting rule of alerts.yml evaluates without error on real data,
      // and nothing fires on a healthy instance.
      interface Rule {
        name: string;
        type: string;
        health: string;
        lastError?: string;
        state?: string;
      }
      const rules = await eventually('every rule evaluated', 60, async () => {
        const res = await fetch(`${prometheus!.url}/api/v1/rules`);
        const body = (await res.json()) as { data: { groups: { rules: Rule[] }[] } };
        const all = body.data.groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((r) => r.health !== 'unknown') ? all : undefined;
      });
      expect(rules.filter((r) => r.type === 'alerting').map((r) => r.name)).toEqual(
        expect.arrayContaining(['TaskApiHighErrorRatio', 'TaskApiHighLatencyP99', 'TaskApiInstanceDown', 'TaskApiDbPoolWaiting']),
      );
      for (const r of rules) expect({ name: r.name, health: r.health, lastError: r.lastError ?? '' }).toEqual({ name: r.name, health: 'ok', lastError: '' });
      expect(rules.filter((r) => r.state === 'firing').map((r) => r.name)).toEqual([]);
      // The recording rules produce their series (the p99 is NaN while the route has no new
      // requests in the window: the value is not the point here, the labels are).
      const recorded = await eventually('recorded p99 of /v1/tasks/:id', 60, async () => {
        const r = await query(prometheus!, 'job_route:http_request_duration_seconds:p99_rate5m{route="/v1/tasks/:id"}');
        return r.length > 0 ? r : undefined;
      });
      expect(recorded[0]!.metric).toEqual({ __name__: 'job_route:http_request_duration_seconds:p99_rate5m', job: 'task-api', service: 'task-api', route: '/v1/tasks/:id' });
      expect(await query(prometheus, 'job:http_requests:rate5m')).toHaveLength(1);

      // Every query of the Grafana dashboard is valid PromQL and finds data.
      const queries = dashboardQueries();
      expect(queries.length).toBeGreaterThan(10);
      for (const { panel, expr } of queries) {
        const result = await eventually(`dashboard panel "${panel}"`, 60, async () => {
          const r = await query(prometheus!, expr);
          return r.length > 0 ? r : undefined;
        });
        expect(result.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      }
    } catch (err) {
      if (prometheus) console.error(`prometheus output:\n${prometheus.output()}`);
      throw err;
    } finally {
      await prometheus?.stop();
      if (server) {
        await server.kill('SIGTERM');
        await server.kill('SIGKILL');
      }
    }
  });
});
