// Prometheus metrics: what the exposition holds after real traffic through app.inject (route
// templates, never raw ids; database, cache, rate-limit and auth counters), the metrics server on
// its own port, and METRICS_ENABLED=false leaving no trace.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetricsServer } from '../../src/observability/metrics-server.js';
import { as, createTestApp, register, uniqueEmail, type TestApp } from '../helpers/app.js';
import type { TaskBody } from '../helpers/bodies.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (label values here contain no escaped quotes). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const samples = (all: Sample[], name: string, labels: Record<string, string> = {}) =>
  all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/** The one sample with exactly these labels (besides none other being asked). */
function value(all: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples(all, name, labels);
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

describe('metrics on PostgreSQL and Redis', () => {
  let t: TestApp;
  let text: string;
  let all: Sample[];
  let taskIds: string[];

  beforeAll(async () => {
    t = await createTestApp();
    const password = 'metrics password 1';
    const email = uniqueEmail('metrics');
    const s = await register(t.app, email, password);
    const call = as(t.app, s.accessToken);
    taskIds = [];
    for (const title of ['one', 'two']) {
      const res = await call({ method: 'POST', url: '/v1/tasks', payload: { title } });
      expect(res.statusCode).toBe(201);
      taskIds.push(res.json<TaskBody>().id);
    }
    // Each task read twice: a miss, then a hit.
    for (const id of taskIds) {
      expect((await call({ method: 'GET', url: `/v1/tasks/${id}` })).headers['x-cache']).toBe('MISS');
      expect((await call({ method: 'GET', url: `/v1/tasks/${id}` })).headers['x-cache']).toBe('HIT');
    }
    expect((await call({ method: 'GET', url: '/v1/tasks' })).statusCode).toBe(200);
    expect((await call({ method: 'GET', url: '/v1/tasks/0190a000-0000-7000-8000-000000000000' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/no/such/page/0190a000-0000-7000-8000-000000000001' })).statusCode).toBe(404);
    // The public app has no /metrics.
    expect((await t.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    // One auth failure of each reason.
    expect((await t.app.inject({ method: 'GET', url: '/v1/tasks' })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/v1/tasks', headers: { authorization: 'Bearer not.a.token' } })).statusCode).toBe(401);
    expect((await call({ method: 'GET', url: '/v1/users' })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'wrong password' } })).statusCode).toBe(401);
    const rotated = await t.app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: s.refreshToken } });
    expect(rotated.statusCode).toBe(200);
    const reused = await t.app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: s.refreshToken } });
    expect(reused.statusCode).toBe(401);

    text = await t.app.metrics!.registry.metrics();
    all = parse(text);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('times requests by method, route template and status code', () => {
    const byRoute = (route: string, status: string, method = 'GET') =>
      value(all, 'http_request_duration_seconds_count', { method, route, status_code: status });
    expect(byRoute('/v1/tasks/:id', '200')).toBe(4);
    expect(byRoute('/v1/tasks/:id', '404')).toBe(1);
    expect(byRoute('/v1/tasks', '201', 'POST')).toBe(2);
    expect(byRoute('/v1/tasks', '401')).toBe(2);
    expect(byRoute('/v1/users', '403')).toBe(1);
    expect(byRoute('/v1/auth/refresh', '401', 'POST')).toBe(1);
    expect(byRoute('unmatched', '404')).toBe(2); // /no/such/page/... and /metrics
    const buckets = samples(all, 'http_request_duration_seconds_bucket', { route: '/v1/tasks/:id', status_code: '200' });
    expect(buckets.map((b) => b.labels.le)).toEqual(
      ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'],
    );
    expect(buckets.at(-1)!.value).toBe(4);
    expect(new Set(samples(all, 'http_request_duration_seconds_count').flatMap((s) => Object.keys(s.labels)))).toEqual(
      new Set(['method', 'route', 'status_code', 'service']),
    );
  });

  it('never puts raw URLs, ids or UUIDs in label values', () => {
    for (const s of all) for (const v of Object.values(s.labels)) expect(v).not.toMatch(UUID);
    for (const id of taskIds) expect(text).not.toContain(id);
    expect(text).not.toContain('/no/such/page');
  });

  it('times database statements by operation and derives the pool gauges', () => {
    expect(value(all, 'db_query_duration_seconds_count', { operation: 'insert tasks' })).toBe(2);
    expect(value(all, 'db_query_duration_seconds_count', { operation: 'select tasks' })).toBeGreaterThanOrEqual(2);
    expect(value(all, 'db_query_duration_seconds_count', { operation: 'select users' })).toBeGreaterThanOrEqual(1);
    for (const s of samples(all, 'db_query_duration_seconds_count')) expect(s.labels.operation).toMatch(/^[a-z]+( [a-z_0-9]+)?$/);
    const max = t.config.database.poolMax;
    expect(value(all, 'db_pool_max')).toBe(max);
    const inUse = value(all, 'db_pool_connections', { state: 'in_use' })!;
    const idle = value(all, 'db_pool_connections', { state: 'idle' })!;
    expect(inUse + idle).toBe(max);
    expect(value(all, 'db_pool_connections', { state: 'waiting' })).toBe(0);
  });

  it('exports the cache, rate-limit and auth counters', () => {
    expect(value(all, 'cache_requests_total', { result: 'hit' })).toBe(t.app.cacheStats.hits);
    expect(value(all, 'cache_requests_total', { result: 'miss' })).toBe(t.app.cacheStats.misses);
    expect(t.app.cacheStats.hits).toBe(2);
    expect(t.app.cacheStats.misses).toBeGreaterThanOrEqual(3);
    expect(value(all, 'rate_limit_rejections_total', { policy: 'default' })).toBe(0);
    expect(samples(all, 'rate_limit_rejections_total').map((s) => s.labels.policy).sort()).toEqual(
      ['auth-ip', 'default', 'login-account', 'login-account-ip', 'password-change'],
    );
    for (const reason of ['missing_token', 'invalid_token', 'forbidden', 'invalid_credentials', 'invalid_refresh_token']) {
      expect(value(all, 'auth_failures_total', { reason }), reason).toBe(1);
    }
    expect(value(all, 'refresh_token_reuse_total')).toBe(1);
  });

  it('labels every series with the service name (OTEL_SERVICE_NAME, task-api by default)', () => {
    expect(all.length).toBeGreaterThan(50);
    for (const s of all) expect({ name: s.name, service: s.labels.service }).toEqual({ name: s.name, service: 'task-api' });
  });

  it('includes the process metrics and uses the Prometheus text format', () => {
    expect(value(all, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(samples(all, 'nodejs_heap_size_used_bytes')).toHaveLength(1);
    expect(t.app.metrics!.registry.contentType).toContain('text/plain; version=0.0.4');
    expect(text).toContain('# TYPE http_request_duration_seconds histogram');
  });
  it('keeps one registry per app instance', async () => {
    const other = await createTestApp({ sharing: t });
    try {
      expect(other.app.metrics!.registry).not.toBe(t.app.metrics!.registry);
      const fresh = parse(await other.app.metrics!.registry.metrics());
      expect(samples(fresh, 'http_request_duration_seconds_count')).toEqual([]);
      expect(value(fresh, 'refresh_token_reuse_total')).toBe(0);
    } finally {
      await other.close();
    }
  });
});

describe('metrics on the embedded stack', () => {
  let t: TestApp;
  beforeAll(async () => {
    // A service of the split topology names itself: its series carry that name.
    t = await createTestApp({ embedded: true, env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_POINTS: '2', RATE_LIMIT_DURATION: '60', OTEL_SERVICE_NAME: 'task-api-tasks' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('counts rate-limit rejections by policy; no pool gauges without a pool', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) codes.push((await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).statusCode);
    expect(codes).toEqual([200, 200, 429]);
    const all = parse(await t.app.metrics!.registry.metrics());
    expect(value(all, 'rate_limit_rejections_total', { policy: 'default' })).toBe(1);
    expect(value(all, 'http_request_duration_seconds_count', { method: 'GET', route: '/.well-known/jwks.json', status_code: '429' })).toBe(1);
    expect(samples(all, 'db_pool_connections')).toEqual([]);
    expect(samples(all, 'db_pool_max')).toEqual([]);
    for (const s of all) expect({ name: s.name, service: s.labels.service }).toEqual({ name: s.name, service: 'task-api-tasks' });
  });

  it('serves GET /metrics on its own server, only there, in the text format, and closes', async () => {
    const server = await startMetricsServer(t.app.metrics!.registry, { host: '127.0.0.1', port: 0 });
    try {
      await t.app.inject({ method: 'GET', url: '/health/live' });
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      expect(await res.text()).toContain('http_request_duration_seconds_count{service="task-api-tasks",method="GET",route="/health/live",status_code="200"} 1');
      expect((await fetch(server.url.replace('/metrics', '/other'))).status).toBe(404);
      expect((await fetch(server.url, { method: 'POST' })).status).toBe(405);
    } finally {
      await server.close();
    }
    await expect(fetch(server.url)).rejects.toThrow();
  });
});

describe('METRICS_ENABLED=false', () => {
  it('installs no metrics plugin, hook or decoration', async () => {
    const t = await createTestApp({ embedded: true, env: { METRICS_ENABLED: 'false' } });
    try {
      expect(t.app.metrics).toBeUndefined();
      expect(t.app.hasDecorator('metrics')).toBe(false);
      expect(t.app.printPlugins()).not.toContain('metrics');
      // Authentication failures still answer as usual with nothing recording them.
      expect((await t.app.inject({ method: 'GET', url: '/v1/tasks' })).statusCode).toBe(401);
      const s = await register(t.app);
      expect((await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: s.user.email, password: 'nope nope nope' } })).statusCode).toBe(401);
    } finally {
      await t.close();
    }
  });
});
