// task-api cluster's settings (src/cluster-config.ts), the API instances' command lines
// (src/operations/cluster/api.ts) and the rendering of the NGINX template
// (src/operations/cluster/nginx.ts): no process started, no NGINX needed.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadClusterConfig } from '../../src/cluster-config.js';
import { apiCommand, type Instance, type Topology } from '../../src/operations/cluster/api.js';
import { lastDisabled } from '../../src/operations/cluster/edge.js';
import { NGINX_TEMPLATE, renderSite, type SiteOptions } from '../../src/operations/cluster/nginx.js';
import { problemsOf as configProblems } from './support/config-problems.js';

const problemsOf = (env: Record<string, string>) => configProblems(loadClusterConfig, env);

describe('cluster config', () => {
  it("defaults to the seed's edge limit: 10 requests a second, burst 20", () => {
    expect(loadClusterConfig({}).edge).toEqual({ ratePerSecond: 10, burst: 20 });
    expect(loadClusterConfig({ EDGE_RATE_LIMIT: '500', EDGE_RATE_BURST: '0' }).edge).toEqual({ ratePerSecond: 500, burst: 0 });
  });

  it.each([
    ['EDGE_RATE_LIMIT', '0'],
    ['EDGE_RATE_LIMIT', 'ten'],
    ['EDGE_RATE_LIMIT', '2000000'],
    ['EDGE_RATE_BURST', '-1'],
    ['EDGE_RATE_BURST', '1.5'],
  ])('refuses %s=%s, naming it', (name, value) => {
    expect(problemsOf({ [name]: value })).toMatch(new RegExp(`^${name}:`));
  });

  it("hands the instances what serve reads and PATH, nothing else of the runner's environment", () => {
    const { inherited } = loadClusterConfig({ PATH: '/bin', LOG_LEVEL: 'debug', RATE_LIMIT_ENABLED: 'false', HOME: '/root', npm_config_cache: '/x', EDGE_RATE_LIMIT: '5' });
    expect(inherited).toEqual({ PATH: '/bin', LOG_LEVEL: 'debug', RATE_LIMIT_ENABLED: 'false' });
  });

  it("hands them the OpenTelemetry SDK's own settings too (tracing, batch delay)", () => {
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SERVICE_NAME: 'mine', OTEL_BSP_SCHEDULE_DELAY: '100' };
    expect(loadClusterConfig({ ...otel, HOME: '/root', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' }).inherited).toEqual({ ...otel, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
  });
});

describe('the API instances of a cluster', () => {
  const topology: Topology = {
    databaseUrl: 'postgres://u:p@127.0.0.1:6432/tasks',
    readUrls: [],
    redisUrl: 'redis://127.0.0.1:6379',
    amqpUrl: 'amqp://127.0.0.1:5672',
    trustProxy: '127.0.0.1',
    jwtPrivateKey: 'key',
  };
  const instance: Instance = { name: 'tasks-1', port: 3001, metricsPort: 9465, dataDir: '/tmp/tasks-1' };

  it('names each service of the split topology task-api-<service> (metrics label, trace resource); the monolith keeps the default', () => {
    expect(apiCommand({ ...instance, service: 'tasks' }, topology, {}).env.OTEL_SERVICE_NAME).toBe('task-api-tasks');
    expect(apiCommand({ ...instance, service: 'notifications' }, topology, {}).env.OTEL_SERVICE_NAME).toBe('task-api-notifications');
    expect(apiCommand({ ...instance, service: 'tasks' }, topology, {}).args.slice(-3)).toEqual(['serve', '--modules', 'tasks']);
    // Without a service: no name set, config's default (task-api) applies.
    expect(apiCommand(instance, topology, {}).env).not.toHaveProperty('OTEL_SERVICE_NAME');
  });

  it("keeps the runner's OTEL_SERVICE_NAME, for every instance", () => {
    expect(apiCommand({ ...instance, service: 'tasks' }, topology, { OTEL_SERVICE_NAME: 'mine' }).env.OTEL_SERVICE_NAME).toBe('mine');
    expect(apiCommand(instance, topology, { OTEL_SERVICE_NAME: 'mine' }).env.OTEL_SERVICE_NAME).toBe('mine');
  });
});

describe('the NGINX template', () => {
  const template = readFileSync(NGINX_TEMPLATE, 'utf8');
  const site: SiteOptions = {
    listen: '127.0.0.1:8080',
    serverName: 'localhost',
    upstreams: ['127.0.0.1:3001', '127.0.0.1:3002'],
    accessLog: '/tmp/access.log',
    edge: { ratePerSecond: 7, burst: 9 },
  };

  it('fills every placeholder and lists each instance with the seed upstream parameters', () => {
    const text = renderSite(template, site);
    expect(text).not.toMatch(/^[^#]*\{\{/m);
    expect(text.match(/^\s*server 127\.0\.0\.1:300[12] max_fails=3 fail_timeout=30s;$/gm)).toHaveLength(2);
    expect(text).toContain('rate=7r/s');
    expect(text).toContain('burst=9 nodelay');
    expect(text).toContain('listen 127.0.0.1:8080;');
    expect(text).toContain('access_log /tmp/access.log task_api_json;');
  });

  it('refuses values that are not one word of configuration, and an unknown placeholder', () => {
    expect(() => renderSite(template, { ...site, serverName: 'a; include /etc/passwd' })).toThrow(/server name/);
    expect(() => renderSite(template, { ...site, upstreams: [] })).toThrow(/at least one/);
    expect(() => renderSite(`${template}\n{{OTHER}}`, site)).toThrow(/unknown placeholder/);
  });
});

describe("NGINX's error log", () => {
  it('tells when each upstream was last taken out of rotation (UTC, per host:port)', () => {
    const line = (time: string, port: number) =>
      `${time} [warn] 10984#10984: *9 upstream server temporarily disabled while reading response header from upstream, client: 127.0.0.1, server: localhost, request: "GET /v1/tasks HTTP/1.1", upstream: "http://127.0.0.1:${port}/v1/tasks", host: "127.0.0.1:18080"`;
    const log = [
      line('2026/11/30 09:03:22', 3001),
      '2026/11/30 09:03:23 [error] 10984#10984: *11 no live upstreams while connecting to upstream, upstream: "http://task_api/v1/tasks"',
      line('2026/11/30 09:03:25', 3001),
      line('2026/11/30 09:03:24', 3002),
    ].join('\n');
    expect(lastDisabled(log)).toEqual(
      new Map([
        ['127.0.0.1:3001', Date.UTC(2026, 10, 30, 9, 3, 25)],
        ['127.0.0.1:3002', Date.UTC(2026, 10, 30, 9, 3, 24)],
      ]),
    );
  });
});
