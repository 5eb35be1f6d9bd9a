// `task-api cluster`: the production topology on one machine, started once for this file in a
// temporary directory (PostgreSQL primary + replica, PgBouncer, Redis, RabbitMQ, three API
// instances, NGINX, Prometheus). The API's contract is walked through NGINX; the edge's request
// id and client address, an instance killed and brought back, a rolling restart and the stop are
// checked as a client and an operator see them. Whatever happens, afterAll stops every recorded
// pid (cluster stop, then SIGKILL to anything still running).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAlive, waitUntil } from '../../src/operations/cluster/processes.js';
import { clusterFixture, expectNginxAccepts, walkContract, type Brief } from '../helpers/cluster.js';

interface Status {
  publicUrl: string;
  allAlive: boolean;
  nginx: Brief;
  instances: (Brief & { metricsUrl: string })[];
  primary: Brief;
  replicas: Brief[];
  pgbouncer: Brief;
  redis: Brief;
  rabbitmq: Brief;
  prometheus: Brief;
  processes: (Brief & { port: number; role: string })[];
}

const fx = clusterFixture<Status>('task-api-cluster-', ['--instances', '3', '--replicas', '1']);
const { cluster, status } = fx;

/** GET on a connection of its own, from a loopback address of our choosing (the whole of 127/8 is local). */
function getFrom(localAddress: string, url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
    const req = request(url, { localAddress, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What the API's default limit has left for the request's key (`RateLimit: "default";r=N`). */
const remaining = (headers: Record<string, string | string[] | undefined>) => Number(/"default";r=(\d+)/.exec(String(headers.ratelimit))?.[1]);

describe('task-api cluster', () => {
  it('start prints the status: every URL and pid, all alive', async () => {
    const s = await status();
    expect(s).toEqual(fx.started());
    expect(s.allAlive).toBe(true);
    expect(s.publicUrl).toBe(s.nginx.url);
    expect(s.instances.map((i) => i.name)).toEqual(['api-1', 'api-2', 'api-3']);
    for (const i of s.instances) expect(i.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(s.primary.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/task_api$/);
    expect(s.replicas).toHaveLength(1);
    expect(s.pgbouncer.url).toMatch(/^postgres:\/\//);
    expect(s.redis.url).toMatch(/^redis:\/\//);
    expect(s.rabbitmq.url).toMatch(/^amqp:\/\//);
    expect(s.prometheus.url).toMatch(/^http:\/\//);
    expect(s.processes).toHaveLength(10);
    for (const p of s.processes) expect(p.pid !== null && isAlive(p.pid), p.name).toBe(true);
    const metrics = await fetch(s.instances[0]!.metricsUrl);
    expect(await metrics.text()).toMatch(/http_request_duration_seconds/);
  });

  it('nginx -t accepts the configuration it runs with', () => {
    expectNginxAccepts(fx.dir());
  });

  it("holds the API's contract through NGINX (register, login, refresh, tasks, lists, admin)", async () => {
    await walkContract(fx.started().publicUrl, fx.started().primary.url);
  });

  it('makes a request id at the edge when the client sends none; the instance logs and answers with it', async () => {
    const res = await fetch(`${fx.started().publicUrl}/v1/tasks`);
    expect(res.status).toBe(401);
    const id = res.headers.get('x-request-id')!;
    expect(id).toMatch(/^[0-9a-f]{32}$/); // NGINX's $request_id
    expect(((await res.json()) as { requestId: string }).requestId).toBe(id);
    // Both log their line once the answer is on its way: wait for them.
    const logged = (file: string) => existsSync(file) && readFileSync(file, 'utf8').includes(id);
    const apiLogs = () => readdirSync(fx.dir()).filter((f) => /^api-\d+\.log$/.test(f)).map((f) => path.join(fx.dir(), f));
    await waitUntil('the instance logs the request id', () => apiLogs().some(logged), 10_000);
    expect(apiLogs().filter((f) => readFileSync(f, 'utf8').includes(`"reqId":"${id}"`))).toHaveLength(1);
    await waitUntil('NGINX logs the request id', () => logged(path.join(fx.dir(), 'nginx', 'access.log')), 10_000);
    const own = await fetch(`${fx.started().publicUrl}/v1/tasks`, { headers: { 'x-request-id': 'client-chosen-1' } });
    expect(own.headers.get('x-request-id')).toBe('client-chosen-1');
  });

  it('keys the rate limit by the address NGINX saw, never by a client-sent X-Forwarded-For', async () => {
    const jwks = `${fx.started().publicUrl}/.well-known/jwks.json`;
    const first = await getFrom('127.0.0.2', jwks);
    expect(first.status).toBe(200);
    const quota = remaining(first.headers) + 1;
    // 127.0.0.2 claims to be 127.0.0.3: still counted as 127.0.0.2.
    const spoofed = await getFrom('127.0.0.2', jwks, { 'x-forwarded-for': '127.0.0.3' });
    expect(remaining(spoofed.headers)).toBe(quota - 2);
    // 127.0.0.3's own first request finds its quota untouched.
    const other = await getFrom('127.0.0.3', jwks);
    expect(remaining(other.headers)).toBe(quota - 1);
  });

  it('keeps answering with an instance killed, and start-one brings it back', async () => {
    const killed = await cluster('kill', 'api-2');
    expect(killed.code, killed.stderr).toBe(0);
    const s = await status();
    expect(s.instances.map((i) => i.alive)).toEqual([true, false, true]);
    expect(s.allAlive).toBe(false);
    for (let i = 0; i < 12; i++) expect((await fetch(`${fx.started().publicUrl}/.well-known/jwks.json`)).status).toBe(200);
    const back = await cluster('start-one', 'api-2');
    expect(back.code, back.stderr).toBe(0);
    expect((await status()).allAlive).toBe(true);
  });

  it('roll restarts every instance in turn while reads through NGINX keep succeeding, on kept-alive connections', async () => {
    const before = (await status()).instances.map((i) => i.pid);
    let stop = false;
    const failures: string[] = [];
    let reads = 0;
    const reader = async () => {
      while (!stop) {
        const res = await fetch(`${fx.started().publicUrl}/.well-known/jwks.json`).catch((err: Error) => err);
        reads++;
        if (res instanceof Error) failures.push(res.message);
        else if (res.status !== 200) failures.push(String(res.status));
        if (!(res instanceof Error)) await res.arrayBuffer();
      }
    };
    const load = Promise.all([reader(), reader()]);
    const rolled = await cluster('roll');
    stop = true;
    await load;
    expect(rolled.code, rolled.stderr).toBe(0);
    const after = await status();
    expect(after.allAlive).toBe(true);
    after.instances.forEach((i, n) => expect(i.pid).not.toBe(before[n]));
    expect(reads).toBeGreaterThan(0);
    expect(failures).toEqual([]);
  });

  it('stop ends every recorded process and frees its ports', async () => {
    await fx.stopAndCheck();
    const after = await status();
    expect(after.processes.every((p) => p.pid === null && !p.alive)).toBe(true);
  });
});
