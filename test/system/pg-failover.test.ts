// PostgreSQL high availability proven on the local topology: `task-api cluster start --ha --sync`
// (etcd, Patroni members patroni-1 (leader) and patroni-2 (synchronous standby), HAProxy to the
// leader, PgBouncer behind it, two API instances behind NGINX). Several users create tasks
// through NGINX while the leader's machine dies (`cluster kill patroni-1`: Patroni and its
// PostgreSQL, SIGKILL). Patroni promotes patroni-2; every write the API acknowledged (201) is
// there afterwards; the requests that failed meanwhile were answered 503 with Retry-After (or the
// edge's own 502, see below), none hung; writes succeed again without restarting an instance.
// The old leader, started again, rejoins as a replica (pg_rewind), and reads go to it again.
//
// Bounded: the load stops after LOAD_MAX_MS or MAX_REQUESTS, every request after
// CLIENT_TIMEOUT_MS, every wait after its own deadline; nothing asserts how long anything took.
// The cluster is stopped after the file whatever happens (test/helpers/cluster.ts).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterFixture, HIGH_LIMITS_ENV } from '../helpers/cluster.js';
import { findBinary } from '../../src/operations/cluster/processes.js';

const LOAD_MAX_MS = 90_000;
const MAX_REQUESTS = 20_000;
const CLIENT_TIMEOUT_MS = 10_000;
const PROMOTION_WAIT_MS = 120_000;
const RECOVERY_WAIT_MS = 90_000;
const REJOIN_WAIT_MS = 180_000;
const REPLICA_READS_WAIT_MS = 60_000;
const USERS = 4;

interface Brief {
  name: string;
  url: string;
  pid: number | null;
  alive: boolean;
}

interface Member extends Brief {
  restUrl: string;
  role: 'leader' | 'sync_standby' | 'replica' | 'unknown';
  timeline?: number;
}

interface Status {
  publicUrl: string;
  allAlive: boolean;
  instances: (Brief & { metricsUrl: string })[];
  postgresHa: { sync: boolean; etcd: Brief; haproxy: Brief & { primaryUrl: string; replicaUrl: string; statsUrl: string }; members: Member[] };
  processes: (Brief & { role: string; port: number })[];
}

const fx = clusterFixture<Status>('task-api-pg-failover-', ['--ha', '--sync', '--instances', '2'], {
  ...HIGH_LIMITS_ENV,
  TASKS_PER_USER_MAX: '1000000',
  LOG_LEVEL: 'warn',
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 250 ms until it holds or `ms` passed; returns whether it held. */
async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await sleep(250);
  }
  return false;
}

/** A member's own view of itself (GET /patroni on its REST API). */
async function patroni(restUrl: string): Promise<{ role?: string; state?: string; timeline?: number; sync_standby?: boolean }> {
  const res = await fetch(`${restUrl}/patroni`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as { role?: string; state?: string; timeline?: number };
}

interface Reply {
  status: number;
  body: unknown;
  retryAfter: string | null;
}

/** One request through NGINX; a timeout or a network error is status 0 (counted as a failure). */
async function call(base: string, method: string, url: string, opts: { token?: string; body?: unknown } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
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
    return { status: res.status, body, retryAfter: res.headers.get('retry-after') };
  } catch {
    return { status: 0, body: undefined, retryAfter: null };
  }
}

interface User {
  token: string;
  /** Ids of the tasks the API answered 201 for. */
  acknowledged: string[];
}

async function newUser(base: string, i: number): Promise<User> {
  const email = `pg-failover-${Date.now()}-${i}@example.com`;
  const password = 'correct horse battery';
  const reg = await call(base, 'POST', '/v1/auth/register', { body: { email, password } });
  expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  const login = await call(base, 'POST', '/v1/auth/login', { body: { email, password } });
  expect(login.status, JSON.stringify(login.body)).toBe(200);
  return { token: (login.body as { accessToken: string }).accessToken, acknowledged: [] };
}

interface LoadResult {
  statuses: Map<number, number>;
  /** Requests that ran past the client's timeout, or failed on the network. */
  failures: number;
  /** 503s without Retry-After. */
  without503RetryAfter: number;
  slowestMs: number;
  /** 201s to requests started after `mark.at` (set once the promotion was seen). */
  okAfterMark: number;
  total: number;
  /** When the first 201 after the kill came (ms since the epoch); 0 if none. */
  firstOkAfterKill: number;
}

/** Every user creates tasks, one after another, until the signal or a bound. */
async function writeLoad(base: string, users: User[], signal: AbortSignal, marks: { killedAt: number; at: number }): Promise<LoadResult> {
  const r: LoadResult = { statuses: new Map(), failures: 0, without503RetryAfter: 0, slowestMs: 0, okAfterMark: 0, total: 0, firstOkAfterKill: 0 };
  const started = Date.now();
  const worker = async (u: User, w: number) => {
    for (let i = 0; !signal.aborted && r.total < MAX_REQUESTS && Date.now() - started < LOAD_MAX_MS; i++) {
      const t0 = Date.now();
      const res = await call(base, 'POST', '/v1/tasks', { token: u.token, body: { title: `failover ${w}-${i}` } });
      r.total++;
      r.slowestMs = Math.max(r.slowestMs, Date.now() - t0);
      r.statuses.set(res.status, (r.statuses.get(res.status) ?? 0) + 1);
      if (res.status === 0) r.failures++;
      if (res.status === 503 && !res.retryAfter) r.without503RetryAfter++;
      if (res.status === 201) {
        u.acknowledged.push((res.body as { id: string }).id);
        if (marks.killedAt > 0 && t0 >= marks.killedAt && r.firstOkAfterKill === 0) r.firstOkAfterKill = Date.now();
        if (marks.at > 0 && t0 >= marks.at) r.okAfterMark++;
      }
      // A few writes a second per user: the failover meets many of them, the logs stay small.
      await sleep(25);
    }
  };
  await Promise.all(users.map((u, w) => worker(u, w)));
  return r;
}

/** The sum of db_reads_routed_total{target="replica"} on an instance's metrics port. */
async function readsOnReplicas(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('db_reads_routed_total{') && line.includes('target="replica"')) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

let status: Status;
const member = (name: string) => status.postgresHa.members.find((m) => m.name === name)!;

describe('PostgreSQL failover under Patroni (--ha --sync)', () => {
  it('starts etcd, a leader, a synchronous standby and HAProxy, and HAProxy accepts its configuration', async () => {
    status = fx.started();
    expect(status.allAlive).toBe(true);
    const roles = Object.fromEntries(status.processes.map((p) => [p.name, p.role]));
    expect(roles).toMatchObject({ etcd: 'etcd', 'patroni-1': 'patroni', 'patroni-2': 'patroni', haproxy: 'haproxy', pgbouncer: 'pgbouncer' });
    expect(status.postgresHa.sync).toBe(true);
    expect(member('patroni-1').role).toBe('leader');
    // Patroni names the synchronous standby once it streams: bounded wait, no timing asserted.
    const sync = await within(60_000, async () => (await patroni(member('patroni-2').restUrl)).sync_standby === true);
    expect(sync, 'patroni-2 becomes the synchronous standby').toBe(true);
    const checked = spawnSync(findBinary('haproxy', process.env.PATH ?? '')!, ['-c', '-f', path.join(fx.dir(), 'haproxy', 'haproxy.cfg')], { encoding: 'utf8' });
    expect(checked.status, checked.stderr + checked.stdout).toBe(0);
  });

  it('promotes the standby when the leader machine dies under writes: no acknowledged write lost, 503 meanwhile, no restart', async () => {
    const base = status.publicUrl;
    const apiPids = status.instances.map((p) => p.pid);
    const users: User[] = [];
    for (let i = 0; i < USERS; i++) users.push(await newUser(base, i));

    const stop = new AbortController();
    const marks = { killedAt: 0, at: 0 };
    const load = writeLoad(base, users, stop.signal, marks);
    let promotedAfterMs = -1;
    let recoveredAfterMs = -1;
    try {
      await sleep(2000);
      const killed = await fx.cluster('kill', 'patroni-1');
      expect(killed.code, killed.stderr).toBe(0);
      marks.killedAt = Date.now();
      const promoted = await within(PROMOTION_WAIT_MS, async () => (await patroni(member('patroni-2').restUrl)).role === 'master');
      expect(promoted, `patroni-2 leads within ${PROMOTION_WAIT_MS} ms`).toBe(true);
      promotedAfterMs = Date.now() - marks.killedAt;
      // NGINX may hold the instances that answered 503 out of rotation for its fail_timeout (30 s):
      // wait, bounded, until ten creates in a row succeed through it, then load on for a while.
      const probe = await newUser(base, 99).catch(() => undefined);
      const recovered = await within(RECOVERY_WAIT_MS, async () => {
        const u = probe ?? users[0]!;
        for (let i = 0; i < 10; i++) {
          const res = await call(base, 'POST', '/v1/tasks', { token: u.token, body: { title: `probe ${i}` } });
          if (res.status !== 201) return false;
          u.acknowledged.push((res.body as { id: string }).id);
        }
        return true;
      });
      expect(recovered, `ten creates in a row succeed within ${RECOVERY_WAIT_MS} ms of the promotion`).toBe(true);
      recoveredAfterMs = Date.now() - marks.killedAt;
      marks.at = Date.now();
      await sleep(3000);
      if (probe) users.push(probe);
    } finally {
      stop.abort();
    }
    const result = await load;
    const acknowledged = users.reduce((n, u) => n + u.acknowledged.length, 0);
    const summary = {
      promotedAfterMs,
      recoveredAfterMs,
      firstOkAfterKillMs: result.firstOkAfterKill ? result.firstOkAfterKill - marks.killedAt : -1,
      acknowledged,
      ...result,
      statuses: Object.fromEntries(result.statuses),
    };
    console.error('pg failover load', JSON.stringify(summary));

    // None hung: every request was answered within the client's timeout.
    expect(result.failures, JSON.stringify(summary)).toBe(0);
    // The instances answer 503 with Retry-After while no leader takes writes. NGINX counts those
    // against the instances (max_fails=3 fail_timeout=30s) and may answer 502 itself ("no live
    // upstreams") for a while: the edge's known defect (docs/runbooks/primary-failover.md).
    const unexpected = [...result.statuses.keys()].filter((code) => ![201, 502, 503].includes(code));
    expect(unexpected, JSON.stringify(summary)).toEqual([]);
    expect(result.without503RetryAfter, JSON.stringify(summary)).toBe(0);
    expect(result.okAfterMark, JSON.stringify(summary)).toBeGreaterThan(0);

    // The same instances, none restarted.
    const now = await fx.status();
    expect(now.instances.map((p) => [p.pid, p.alive])).toEqual(apiPids.map((pid) => [pid, true]));
    expect(now.postgresHa.members.find((m) => m.name === 'patroni-2')?.role).toBe('leader');

    // Every acknowledged write is there (synchronous replication): each read back through NGINX.
    const missing: string[] = [];
    for (const u of users) {
      for (const id of u.acknowledged) {
        const got = await call(base, 'GET', `/v1/tasks/${id}`, { token: u.token });
        if (got.status !== 200) missing.push(`${id}: ${got.status}`);
      }
    }
    expect(missing, `${missing.length} of ${acknowledged} acknowledged tasks not readable`).toEqual([]);
  }, 420_000);

  it('the old leader, started again, rejoins as a replica of the new one, and reads go to replicas again', async () => {
    const restarted = await fx.cluster('start-one', 'patroni-1');
    expect(restarted.code, restarted.stderr).toBe(0);
    const leaderTimeline = (await patroni(member('patroni-2').restUrl)).timeline;
    const rejoined = await within(REJOIN_WAIT_MS, async () => {
      const me = await patroni(member('patroni-1').restUrl);
      return me.role === 'replica' && me.state === 'running' && me.timeline === leaderTimeline;
    });
    expect(rejoined, `patroni-1 runs as a replica on timeline ${leaderTimeline} within ${REJOIN_WAIT_MS} ms`).toBe(true);
    const now = await fx.status();
    expect(now.postgresHa.members.map((m) => [m.name, m.role === 'leader' ? 'leader' : 'replica'])).toEqual([
      ['patroni-1', 'replica'],
      ['patroni-2', 'leader'],
    ]);

    // Read-your-writes across the timeline switch: the instances read from the rejoined replica
    // again (their replica monitor is not wedged on positions of the old timeline), and a user
    // still reads their own write at once.
    const base = status.publicUrl;
    const u = await newUser(base, 100);
    const before = await Promise.all(status.instances.map((i) => readsOnReplicas(i.metricsUrl)));
    const wrong: string[] = [];
    const onReplicas = await within(REPLICA_READS_WAIT_MS, async () => {
      const created = await call(base, 'POST', '/v1/tasks', { token: u.token, body: { title: 'after rejoin' } });
      if (created.status !== 201) wrong.push(`create: ${created.status}`);
      const id = (created.body as { id?: string } | undefined)?.id ?? '';
      const got = await call(base, 'GET', `/v1/tasks/${id}`, { token: u.token });
      if (got.status !== 200) wrong.push(`get ${id}: ${got.status}`);
      const listed = await call(base, 'GET', '/v1/tasks?limit=100', { token: u.token });
      if (!(listed.body as { data?: { id: string }[] }).data?.some((t) => t.id === id)) wrong.push(`list without ${id}: ${listed.status}`);
      const after = await Promise.all(status.instances.map((i) => readsOnReplicas(i.metricsUrl)));
      return after.some((n, i) => n > before[i]!);
    });
    expect(wrong).toEqual([]);
    expect(onReplicas, `reads are routed to a replica again within ${REPLICA_READS_WAIT_MS} ms`).toBe(true);
  }, 300_000);

  it('stops every process it started', async () => {
    await fx.stopAndCheck();
  }, 180_000);
});
