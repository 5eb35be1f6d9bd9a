// deploy/nginx/gateway.conf.template against the real NGINX, in front of one stub instance per
// service that answers with its service's name: every route the modules register (their OpenAPI
// documents, one process per module as `serve --modules <m>` builds it) is sent through the
// gateway and must reach the service of the module that owns it; /openapi.json and /docs/json are
// the whole API's document; a service with no instance alive answers 503 problem+json with
// Retry-After while the others keep answering.
import { once } from 'node:events';
import { chmodSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODULE_NAMES, type ModuleName } from '../../src/modules/registry.js';
import { GATEWAY_SERVICES, nginxCommand, testNginxConfig, writeGatewayConfig, writeNginxFiles, type GatewayService } from '../../src/operations/cluster/nginx.js';
import { findBinary, launch, stopPid, tcpOpen, waitUntil } from '../../src/operations/cluster/processes.js';
import { openApiDocument, serialiseDocument } from '../../src/operations/openapi.js';
import { freePort, runCli } from '../helpers/process.js';

const PATH = process.env.PATH ?? '';
const NGINX = findBinary('nginx', PATH);
const cleanups: (() => Promise<unknown>)[] = [];
let dir = '';
let url = '';
let whole: { paths: Record<string, unknown> };
const servers = new Map<GatewayService, Server>();
// A port nothing listens on: the service whose instances are all down.
let deadPort = 0;

type Doc = { paths: Record<string, Record<string, unknown>> };

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

beforeAll(async () => {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install -y nginx)');
  dir = await mkdtemp(path.join(tmpdir(), 'task-api-gateway-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // NGINX's workers (nobody, when the master is root) read the document from it.
  chmodSync(dir, 0o755);
  const ports = {} as Record<GatewayService, string[]>;
  for (const service of GATEWAY_SERVICES) {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ service, method: req.method, url: req.url })));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.set(service, server);
    cleanups.push(() => new Promise((r) => server.close(r)));
    ports[service] = [`127.0.0.1:${(server.address() as { port: number }).port}`];
  }
  deadPort = await freePort();
  // The notifications service has a second instance, never up: NGINX passes requests on.
  ports.notifications.push(`127.0.0.1:${deadPort}`);
  whole = (await openApiDocument()) as Doc;
  const openapiFile = path.join(dir, 'openapi.json');
  writeFileSync(openapiFile, serialiseDocument(whole));
  const port = await freePort();
  const layout = await writeGatewayConfig(path.join(dir, 'nginx'), {
    listen: `127.0.0.1:${port}`,
    serverName: 'localhost',
    services: ports,
    openapiFile,
    edge: { ratePerSecond: 100000, burst: 100000 },
  });
  const checked = testNginxConfig(layout, NGINX);
  if (!checked.ok) throw new Error(checked.output);
  const pid = launch({ ...nginxCommand(layout, NGINX, PATH), logFile: path.join(dir, 'nginx.log') });
  cleanups.push(() => stopPid(pid, 'SIGQUIT'));
  await waitUntil('nginx', () => tcpOpen(port), 15_000, pid);
  url = `http://127.0.0.1:${port}`;
}, 120_000);

/** method and path (parameters filled in) of every route a process serving only `m` registers. */
async function routesOf(m: ModuleName): Promise<{ method: string; path: string }[]> {
  const doc = (await openApiDocument(new Set([m]))) as Doc;
  return Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map((method) => ({ method: method.toUpperCase(), path: p.replace(/\{[^}]+\}/g, 'x1') })));
}

describe('NGINX gateway (deploy/nginx/gateway.conf.template)', () => {
  it('nginx -t accepts the production rendering (gateway-config)', async () => {
    const services = GATEWAY_SERVICES.flatMap((s, i) => ['--service', `${s}=10.0.0.${i + 1}:3000,10.0.0.${i + 1}:3001`]);
    const rendered = await runCli(['cluster', 'gateway-config', ...services, '--openapi', path.join(dir, 'openapi.json'), '--access-log', path.join(dir, 'access.log')], {});
    expect(rendered.code, rendered.stderr).toBe(0);
    for (const s of GATEWAY_SERVICES) expect(rendered.stdout).toContain(`upstream task_api_${s} {`);
    expect(rendered.stdout.match(/^\s*server 10\.0\.0\.\d:300[01] max_fails=3 fail_timeout=30s;$/gm)).toHaveLength(8);
    expect(rendered.stdout).toContain('rate=10r/s');
    expect(rendered.stdout).not.toMatch(/^[^#]*\{\{/m);
    const checked = testNginxConfig(await writeNginxFiles(path.join(dir, 'production'), rendered.stdout), NGINX!);
    expect(checked.output).toMatch(/test is successful/);
    // A service left out is refused, naming it.
    const missing = await runCli(['cluster', 'gateway-config', ...services.slice(0, 6)], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--service notifications=');
  });

  it('sends every route the modules register to the service of the module that owns it', async () => {
    const tables = new Map<ModuleName, { method: string; path: string }[]>();
    for (const m of MODULE_NAMES) tables.set(m, await routesOf(m));
    // Routes every process serves whatever its modules (/health, ...) belong to no service.
    const key = (r: { method: string; path: string }) => `${r.method} ${r.path}`;
    const common = [...tables.values()].map((t) => new Set(t.map(key))).reduce((a, b) => new Set([...a].filter((k) => b.has(k))));
    const wrong: string[] = [];
    let checked = 0;
    for (const [m, routes] of tables) {
      for (const r of routes.filter((x) => !common.has(key(x)))) {
        const res = await fetch(`${url}${r.path}?q=1`, { method: r.method, headers: { 'content-type': 'application/json' }, body: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}' });
        const body = (await res.json()) as { service: string; url: string };
        checked++;
        if (res.status !== 200 || body.service !== m || body.url !== `${r.path}?q=1`) wrong.push(`${key(r)}: ${res.status} ${JSON.stringify(body)} (owner ${m})`);
      }
    }
    expect(wrong).toEqual([]);
    // Every module's routes were there to check, including the ones the path alone tells apart.
    expect(checked).toBeGreaterThan(20);
    expect(tables.get('notifications')!.map(key)).toContain('GET /v1/users/me/notification-preferences');
    expect(tables.get('auth')!.map(key)).toContain('GET /.well-known/jwks.json');
    // Together the services serve the whole API: every path of the whole document is owned.
    const owned = new Set([...tables.values()].flatMap((t) => t.map((r) => r.path)));
    for (const p of Object.keys(whole.paths)) expect(owned.has(p.replace(/\{[^}]+\}/g, 'x1')), p).toBe(true);
  });

  it('serves the whole API as /openapi.json and /docs/json, whichever service holds /docs', async () => {
    for (const p of ['/openapi.json', '/docs/json']) {
      const res = await fetch(`${url}${p}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      const doc = (await res.json()) as Doc;
      expect(Object.keys(doc.paths).sort()).toEqual(Object.keys(whole.paths).sort());
    }
    // The UI's own files come from a service (the default one), not from NGINX.
    expect(((await (await fetch(`${url}/docs/static/x`)).json()) as { service: string }).service).toBe('tasks');
  });

  it('answers 503 problem+json with Retry-After for a service with no instance alive; the others keep answering', async () => {
    const auth = servers.get('auth')!;
    const closed = new Promise((r) => auth.close(r));
    auth.closeAllConnections();
    await closed;
    const res = await fetch(`${url}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('retry-after')).toBe('5');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ type: 'urn:task-api:problem:service-unavailable', status: 503 });
    expect(body.detail).toMatch(/auth service/);
    expect(body.requestId).toBe(res.headers.get('x-request-id'));
    expect((await fetch(`${url}/v1/tasks`)).status).toBe(200);
    // One notifications instance down: its requests go to the other.
    for (let i = 0; i < 4; i++) expect(((await (await fetch(`${url}/v1/notifications`)).json()) as { service: string }).service).toBe('notifications');
  });
});
