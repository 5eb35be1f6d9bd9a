// deploy/nginx/task-api.conf.template against the real NGINX: `nginx -t` on the production
// rendering, then a small NGINX of each test's own (rendered as `task-api cluster` renders it) in
// front of stub instances that record every attempt they receive. What is checked is what a
// client and an instance see: the edge's 429, the retry rule for writes, the proxy headers.
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadClusterConfig, type EdgeSettings } from '../../src/cluster-config.js';
import { nginxCommand, testNginxConfig, writeNginxConfig, writeNginxFiles } from '../../src/operations/cluster/nginx.js';
import { findBinary, launch, stopPid, tcpOpen, waitUntil } from '../../src/operations/cluster/processes.js';
import { freePort, runCli } from '../helpers/process.js';

const PATH = process.env.PATH ?? '';
const NGINX = findBinary('nginx', PATH);
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-nginx-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Attempt {
  port: number;
  method: string;
  url: string;
  requestId: string;
  headers: IncomingHttpHeaders;
}

/**
 * Instances that fail the first attempt of every request (by X-Request-Id, whichever instance
 * gets it) and answer any later attempt with 200: a request NGINX passes on to another instance
 * succeeds, one it does not shows the failure. `first` is the failure: a status, or 'reset' (the
 * connection closed without an answer, as when an instance dies mid-request).
 */
async function stubInstances(count: number, first: number | 'reset' = 'reset'): Promise<{ ports: number[]; attempts: Attempt[] }> {
  const attempts: Attempt[] = [];
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const server: Server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const requestId = String(req.headers['x-request-id']);
        const isFirst = !attempts.some((a) => a.requestId === requestId);
        attempts.push({ port, method: req.method ?? '', url: req.url ?? '', requestId, headers: req.headers });
        if (isFirst && first === 'reset') return void req.socket.destroy();
        res.writeHead(isFirst && first !== 'reset' ? first : 200, { 'content-type': 'application/json' }).end(JSON.stringify({ port }));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    ports.push(port);
    cleanups.push(() => new Promise((r) => server.close(r)));
  }
  return { ports, attempts };
}

/** NGINX with the template rendered for these instances, listening on a free loopback port. */
async function startEdge(ports: number[], edge: EdgeSettings = { ratePerSecond: 1000, burst: 1000 }): Promise<string> {
  const dir = await tempDir();
  const port = await freePort();
  const layout = await writeNginxConfig(dir, { listen: `127.0.0.1:${port}`, serverName: 'localhost', upstreams: ports.map((p) => `127.0.0.1:${p}`), edge });
  const pid = launch({ ...nginxCommand(layout, NGINX!, PATH), logFile: path.join(dir, 'nginx.log') });
  cleanups.push(() => stopPid(pid, 'SIGQUIT'));
  await waitUntil('nginx', () => tcpOpen(port), 15_000, pid);
  return `http://127.0.0.1:${port}`;
}

const send = (url: string, method: string, headers: Record<string, string> = {}) =>
  fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body: method === 'GET' ? undefined : '{}' });

describe('NGINX edge (deploy/nginx/task-api.conf.template)', () => {
  beforeAll(() => {
    if (!NGINX) throw new Error('nginx is not installed (apt-get install -y nginx; bash .ci/run does it)');
  });

  it('nginx -t accepts the production rendering, with stub upstreams', async () => {
    const dir = await tempDir();
    const access = path.join(dir, 'access.log');
    const upstreams = ['--upstream', '127.0.0.1:3000', '--upstream', '127.0.0.1:3001,127.0.0.1:3002'];
    const rendered = await runCli(['cluster', 'nginx-config', ...upstreams, '--listen', '80', '--server-name', 'api.example.com', '--access-log', access], {});
    expect(rendered.code, rendered.stderr).toBe(0);
    expect(rendered.stdout).toContain('rate=10r/s'); // the seed's defaults
    expect(rendered.stdout).toContain('burst=20 nodelay');
    expect(rendered.stdout.match(/^\s*server 127\.0\.0\.1:300[0-2] max_fails=3 fail_timeout=30s;$/gm)).toHaveLength(3);
    expect(rendered.stdout).not.toMatch(/^[^#]*\{\{/m);
    const layout = await writeNginxFiles(dir, rendered.stdout);
    const checked = testNginxConfig(layout, NGINX!);
    expect(checked.output).toMatch(/test is successful/);
    expect(checked.ok).toBe(true);
  });

  it('answers past the burst with 429 problem+json, Retry-After and the request id; the instances never see those', async () => {
    const { ports, attempts } = await stubInstances(1, 200);
    const url = await startEdge(ports, loadClusterConfig({ EDGE_RATE_LIMIT: '1', EDGE_RATE_BURST: '2' }).edge);
    const answers = await Promise.all(Array.from({ length: 12 }, () => fetch(`${url}/v1/tasks`)));
    const limited = answers.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(answers.filter((r) => r.status === 200)).toHaveLength(attempts.length);
    const res = limited[0]!;
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.headers.get('server')).toBe('nginx'); // server_tokens off: no version
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ type: 'urn:task-api:problem:too-many-requests', title: 'Too Many Requests', status: 429 });
    expect(body.detail).toMatch(/1 requests a second \(burst 2\)/);
    expect(body.requestId).toBe(res.headers.get('x-request-id'));
    expect(body.requestId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('sets X-Forwarded-For to the client address (a client-sent one is dropped) and passes or makes the request id', async () => {
    const { ports, attempts } = await stubInstances(1, 200);
    const url = await startEdge(ports);
    await send(`${url}/v1/tasks`, 'GET', { 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9' });
    await send(`${url}/v1/tasks`, 'GET', { 'x-request-id': 'client-id.1:2' });
    await send(`${url}/v1/tasks`, 'GET', { 'x-request-id': 'not/an id' });
    const [spoofed, given, refused] = attempts;
    expect(spoofed!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(spoofed!.headers['x-real-ip']).toBe('127.0.0.1');
    expect(spoofed!.headers['x-forwarded-proto']).toBe('http');
    expect(spoofed!.requestId).toMatch(/^[0-9a-f]{32}$/);
    expect(given!.requestId).toBe('client-id.1:2');
    expect(refused!.requestId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('retries idempotent methods on another instance, POST and PATCH only with an Idempotency-Key', async () => {
    const { ports, attempts } = await stubInstances(3);
    const tried = async (method: string, headers: Record<string, string> = {}) => {
      // A fresh NGINX each time: the instances' failures (max_fails) are not carried over.
      const url = await startEdge(ports);
      const requestId = `retry-${method}-${Object.keys(headers).length}`;
      const res = await send(`${url}/v1/tasks/x?q=%2F`, method, { ...headers, 'x-request-id': requestId });
      const mine = attempts.filter((a) => a.requestId === requestId);
      return { status: res.status, attempts: mine.length, instances: new Set(mine.map((a) => a.port)).size };
    };
    // The first attempt of each request loses its connection (an instance dying or restarting):
    // NGINX's own 502 when it may not resend.
    expect(await tried('GET')).toEqual({ status: 200, attempts: 2, instances: 2 });
    expect(await tried('DELETE')).toEqual({ status: 200, attempts: 2, instances: 2 });
    expect(await tried('POST')).toEqual({ status: 502, attempts: 1, instances: 1 });
    expect(await tried('PATCH')).toEqual({ status: 502, attempts: 1, instances: 1 });
    expect(await tried('POST', { 'idempotency-key': 'k-1' })).toEqual({ status: 200, attempts: 2, instances: 2 });
    expect(await tried('PATCH', { 'idempotency-key': 'k-2' })).toEqual({ status: 200, attempts: 2, instances: 2 });
    // The retried write reached the instance as the client sent it.
    const retried = attempts.filter((a) => a.requestId === 'retry-POST-1');
    expect(retried.map((a) => [a.method, a.url, a.headers['idempotency-key']])).toEqual([
      ['POST', '/v1/tasks/x?q=%2F', 'k-1'],
      ['POST', '/v1/tasks/x?q=%2F', 'k-1'],
    ]);
  });

  it("passes an instance's 503 (a dependency outage every instance shares) to the client, and keeps the instance in rotation", async () => {
    // Every instance answers 503 until `outage` is over, as during a database or Redis failover.
    const outage = { on: true };
    const seen: number[] = [];
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const server: Server = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          seen.push(port);
          res.writeHead(outage.on ? 503 : 200, { 'content-type': 'application/json', 'retry-after': '1' }).end('{}');
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as { port: number }).port;
      ports.push(port);
      cleanups.push(() => new Promise((r) => server.close(r)));
    }
    const url = await startEdge(ports);
    // Far more 503s than max_fails (3) on each instance: each reaches the client once, not resent.
    for (let i = 0; i < 10; i++) expect((await send(`${url}/v1/tasks`, 'GET')).status).toBe(503);
    expect(seen).toHaveLength(10);
    outage.on = false;
    // The outage over, both instances answer at once: none was taken out of rotation.
    const after = [];
    for (let i = 0; i < 6; i++) after.push((await send(`${url}/v1/tasks`, 'GET')).status);
    expect(after).toEqual([200, 200, 200, 200, 200, 200]);
    expect(new Set(seen.slice(10))).toEqual(new Set(ports));
  });
});
