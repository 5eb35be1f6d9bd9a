// Redis high availability proven on the local topology: `task-api cluster start --redis-sentinel`
// (a Redis master, one replica, three Sentinels; the API instances reach the master through the
// Sentinels), a mixed load through NGINX (creates, lists, token refreshes) while the master is
// killed with SIGKILL. Sentinel promotes the replica; no request hangs or fails with a 500 on the
// way; afterwards, without restarting an instance, writes, lists (never a stale cached one) and
// refresh-token rotation work, and the old master, started again, rejoins as a replica.
//
// Bounded: the load stops after LOAD_MAX_MS or MAX_REQUESTS, every request after
// CLIENT_TIMEOUT_MS, every wait after its own deadline; the cluster is stopped after the file
// whatever happens (test/helpers/cluster.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { clusterFixture, HIGH_LIMITS_ENV } from '../helpers/cluster.js';

const LOAD_MAX_MS = 60_000;
const MAX_REQUESTS = 20_000;
const CLIENT_TIMEOUT_MS = 10_000;
const PROMOTION_WAIT_MS = 30_000;
const REJOIN_WAIT_MS = 60_000;
const EDGE_RECOVERY_WAIT_MS = 45_000;
const USERS = 4;
const MASTER = 'task-api';

interface Brief {
  name: string;
  url: string;
  pid: number | null;
  alive: boolean;
}

interface Status {
  publicUrl: string;
  allAlive: boolean;
  redis: Brief;
  redisSentinel: { master: string; replicas: Brief[]; sentinels: Brief[] };
  processes: (Brief & { role: string; port: number })[];
}

interface Session {
  email: string;
  password: string;
  accessToken: string;
  refreshToken: string;
}

const fx = clusterFixture<Status>('task-api-redis-failover-', ['--redis-sentinel', '--instances', '2', '--replicas', '0'], {
  ...HIGH_LIMITS_ENV,
  TASKS_PER_USER_MAX: '1000000',
  LOG_LEVEL: 'warn',
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const portOf = (url: string) => Number(new URL(url).port);

/** One short-lived connection to a loopback Redis or Sentinel (never the shared one on 6379). */
async function ask<T>(port: number, ...command: string[]): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.call(command[0]!, ...command.slice(1))) as T;
  } finally {
    r.disconnect();
  }
}

/** The master's port as the first Sentinel that answers names it. */
async function masterPort(sentinelPorts: number[]): Promise<number | undefined> {
  for (const port of sentinelPorts) {
    try {
      const addr = await ask<[string, string] | null>(port, 'SENTINEL', 'get-master-addr-by-name', MASTER);
      if (addr) return Number(addr[1]);
    } catch {
      // the next Sentinel
    }
  }
  return undefined;
}

/** Polls `check` every 250 ms until it holds or `ms` passed; returns whether it held. */
async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await sleep(250);
  }
  return false;
}

interface Reply {
  status: number;
  body: unknown;
}

/** One request through NGINX; a timeout or a network error is status 0 (counted as a failure). */
async function call(base: string, method: string, url: string, opts: { token?: string; body?: unknown; key?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.key) headers['idempotency-key'] = opts.key;
  try {
    const res = await fetch(`${base}${url}`, {
      method,
      headers,
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, body };
  } catch {
    return { status: 0, body: undefined };
  }
}

async function signIn(base: string, email: string, password: string): Promise<Session> {
  const res = await call(base, 'POST', '/v1/auth/login', { body: { email, password } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const b = res.body as { accessToken: string; refreshToken: string };
  return { email, password, accessToken: b.accessToken, refreshToken: b.refreshToken };
}

interface LoadResult {
  statuses: Map<number, number>;
  /** Requests that ran longer than the client's timeout, or failed on the network. */
  failures: number;
  /** Slowest request, ms. */
  slowestMs: number;
  /** 2xx answers to requests started after `markedAt` (set once the replica was promoted). */
  okAfterMark: number;
  refreshes: { ok: number; refused: number };
  total: number;
  /** The status of each user's last five requests. */
  tail: number[];
}

/** Creates, lists and refreshes for every session, until the signal or a bound. */
async function mixedLoad(base: string, sessions: Session[], signal: AbortSignal, mark: { at: number }): Promise<LoadResult> {
  const r: LoadResult = { statuses: new Map(), failures: 0, slowestMs: 0, okAfterMark: 0, refreshes: { ok: 0, refused: 0 }, total: 0, tail: [] };
  const started = Date.now();
  const worker = async (s: Session, w: number) => {
    const last: number[] = [];
    for (let i = 0; !signal.aborted && r.total < MAX_REQUESTS && Date.now() - started < LOAD_MAX_MS; i++) {
      const t0 = Date.now();
      const op = i % 4;
      let res: Reply;
      if (op === 0) {
        res = await call(base, 'POST', '/v1/tasks', { token: s.accessToken, body: { title: `load ${w}-${i}` }, key: `failover-${w}-${i}-${t0}` });
      } else if (op === 3) {
        res = await call(base, 'POST', '/v1/auth/refresh', { body: { refreshToken: s.refreshToken } });
        if (res.status === 200) {
          const b = res.body as { accessToken: string; refreshToken: string };
          s.accessToken = b.accessToken;
          s.refreshToken = b.refreshToken;
          r.refreshes.ok++;
        } else if (res.status === 401) {
          // A rotation lost with the master: the user signs in again.
          r.refreshes.refused++;
          const again = await call(base, 'POST', '/v1/auth/login', { body: { email: s.email, password: s.password } });
          r.total++;
          r.statuses.set(again.status, (r.statuses.get(again.status) ?? 0) + 1);
          if (again.status === 200) {
            const b = again.body as { accessToken: string; refreshToken: string };
            s.accessToken = b.accessToken;
            s.refreshToken = b.refreshToken;
          }
        }
      } else {
        res = await call(base, 'GET', '/v1/tasks?limit=5', { token: s.accessToken });
      }
      const ms = Date.now() - t0;
      r.total++;
      r.slowestMs = Math.max(r.slowestMs, ms);
      r.statuses.set(res.status, (r.statuses.get(res.status) ?? 0) + 1);
      if (res.status === 0) r.failures++;
      last.push(res.status);
      if (last.length > 5) last.shift();
      if (res.status >= 200 && res.status < 300 && mark.at > 0 && t0 >= mark.at) r.okAfterMark++;
      // A few requests a second per user: the failover is seen by many requests, the log stays small.
      await sleep(20);
    }
    r.tail.push(...last);
  };
  await Promise.all(sessions.map((s, w) => worker(s, w)));
  return r;
}

let status: Status;

describe('Redis failover under Sentinel', () => {
  it('starts a master, a replica and three Sentinels, and the instances use them', async () => {
    status = fx.started();
    expect(status.allAlive).toBe(true);
    const roles = Object.fromEntries(status.processes.map((p) => [p.name, p.role]));
    expect(roles).toMatchObject({
      redis: 'redis',
      'redis-replica-1': 'redis-replica',
      'sentinel-1': 'redis-sentinel',
      'sentinel-2': 'redis-sentinel',
      'sentinel-3': 'redis-sentinel',
    });
    const sentinels = status.redisSentinel.sentinels.map((s) => portOf(s.url));
    expect(await masterPort(sentinels)).toBe(portOf(status.redis.url));
    const info = await ask<string>(portOf(status.redisSentinel.replicas[0]!.url), 'INFO', 'replication');
    expect(info).toMatch(/role:slave/);
  });

  it('promotes the replica when the master is killed under load, and the API keeps answering without a restart', async () => {
    const base = status.publicUrl;
    const sentinels = status.redisSentinel.sentinels.map((s) => portOf(s.url));
    const oldMaster = portOf(status.redis.url);
    const replica = portOf(status.redisSentinel.replicas[0]!.url);
    const apiPids = status.processes.filter((p) => p.role === 'api').map((p) => p.pid);

    const sessions: Session[] = [];
    for (let i = 0; i < USERS; i++) {
      const email = `failover-${Date.now()}-${i}@example.com`;
      const password = 'correct horse battery';
      const reg = await call(base, 'POST', '/v1/auth/register', { body: { email, password } });
      expect(reg.status, JSON.stringify(reg.body)).toBe(201);
      sessions.push(await signIn(base, email, password));
    }

    const stop = new AbortController();
    const mark = { at: 0 };
    const load = mixedLoad(base, sessions, stop.signal, mark);
    let promotedAfterMs = -1;
    let recoveredAfterMs = -1;
    try {
      await sleep(1500);
      const killed = await fx.cluster('kill', 'redis');
      expect(killed.code, killed.stderr).toBe(0);
      const t0 = Date.now();
      const promoted = await within(PROMOTION_WAIT_MS, async () => (await masterPort(sentinels)) === replica);
      expect(promoted, `a Sentinel names the replica (port ${replica}) master within ${PROMOTION_WAIT_MS} ms`).toBe(true);
      promotedAfterMs = Date.now() - t0;
      // The edge takes instances that answered 503 out of rotation for its fail_timeout (30 s):
      // wait, bounded, until ten requests in a row succeed through it, then load on for a while.
      const probe = sessions[0]!;
      const recovered = await within(EDGE_RECOVERY_WAIT_MS, async () => {
        for (let i = 0; i < 10; i++) if ((await call(base, 'GET', '/v1/tasks?limit=1', { token: probe.accessToken })).status !== 200) return false;
        return true;
      });
      expect(recovered, `ten requests in a row succeed through NGINX within ${EDGE_RECOVERY_WAIT_MS} ms of the promotion`).toBe(true);
      recoveredAfterMs = Date.now() - t0;
      mark.at = Date.now();
      await sleep(3000);
    } finally {
      stop.abort();
    }
    const result = await load;
    const { tail: _tail, ...rest } = result;
    const summary = { promotedAfterMs, recoveredAfterMs, ...rest, statuses: Object.fromEntries(result.statuses) };
    console.error('redis failover load', JSON.stringify(summary));

    expect(result.failures, JSON.stringify(summary)).toBe(0);
    expect(result.slowestMs, JSON.stringify(summary)).toBeLessThan(CLIENT_TIMEOUT_MS);
    // No 500 and no 502: the instances answer 503 while no master is reachable (the session and
    // idempotency stores refuse rather than guess), and NGINX passes those on without counting
    // them against the instances (deploy/nginx/edge-server.conf.inc): none is taken out of
    // rotation, and its error log shows no failed attempt, no refused or broken connection.
    const unexpected = [...result.statuses.keys()].filter((code) => ![200, 201, 401, 429, 503].includes(code));
    expect(unexpected, JSON.stringify(summary)).toEqual([]);
    const edgeLog = readFileSync(path.join(fx.dir(), 'nginx', 'error.log'), 'utf8').split('\n');
    expect(edgeLog.filter((l) => l.includes('[error]') || l.includes('temporarily disabled')).slice(0, 5)).toEqual([]);
    expect(result.okAfterMark, JSON.stringify(summary)).toBeGreaterThan(0);
    // And it ends well: the last requests of every user all succeeded.
    expect(result.tail.filter((code) => code < 200 || code >= 300), JSON.stringify(summary)).toEqual([]);

    // The same instances, none restarted.
    const now = await fx.status();
    expect(now.processes.filter((p) => p.role === 'api').map((p) => [p.pid, p.alive])).toEqual(apiPids.map((pid) => [pid, true]));

    // Writes and lists, and no stale cached list after an update: the list is cached first, then
    // the task updated, then read back through NGINX (both instances, in turn) several times.
    const s = await signIn(base, sessions[0]!.email, sessions[0]!.password);
    const created = await call(base, 'POST', '/v1/tasks', { token: s.accessToken, body: { title: 'after failover' } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as { id: string }).id;
    for (let i = 0; i < 4; i++) {
      const listed = await call(base, 'GET', '/v1/tasks?limit=100', { token: s.accessToken });
      expect(listed.status).toBe(200);
      expect((listed.body as { data: { id: string }[] }).data.map((t) => t.id)).toContain(id);
    }
    const patched = await call(base, 'PATCH', `/v1/tasks/${id}`, { token: s.accessToken, body: { title: 'updated after failover' } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    for (let i = 0; i < 6; i++) {
      const listed = await call(base, 'GET', '/v1/tasks?limit=100', { token: s.accessToken });
      expect(listed.status).toBe(200);
      const mine = (listed.body as { data: { id: string; title: string }[] }).data.find((t) => t.id === id);
      expect(mine?.title).toBe('updated after failover');
      const item = await call(base, 'GET', `/v1/tasks/${id}`, { token: s.accessToken });
      expect((item.body as { title: string }).title).toBe('updated after failover');
    }

    // A refresh-token rotation on the new master: the new token works, the used one no longer does.
    const first = await call(base, 'POST', '/v1/auth/refresh', { body: { refreshToken: s.refreshToken } });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const rotated = (first.body as { refreshToken: string }).refreshToken;
    expect(rotated).not.toBe(s.refreshToken);
    const second = await call(base, 'POST', '/v1/auth/refresh', { body: { refreshToken: rotated } });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect((await call(base, 'POST', '/v1/auth/refresh', { body: { refreshToken: s.refreshToken } })).status).toBe(401);

    // The old master, started again, is turned into a replica of the new one by the Sentinels.
    const restarted = await fx.cluster('start-one', 'redis');
    expect(restarted.code, restarted.stderr).toBe(0);
    const rejoined = await within(REJOIN_WAIT_MS, async () => {
      const info = await ask<string>(oldMaster, 'INFO', 'replication');
      return info.includes('role:slave') && info.includes(`master_port:${replica}`);
    });
    expect(rejoined, `the old master (port ${oldMaster}) replicates from ${replica} within ${REJOIN_WAIT_MS} ms`).toBe(true);
    expect(await masterPort(sentinels)).toBe(replica);
  }, 240_000);

  it('stops every process it started', async () => {
    await fx.stopAndCheck();
  }, 120_000);
});
