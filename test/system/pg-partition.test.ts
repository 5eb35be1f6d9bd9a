// A network partition of the PostgreSQL leader, not a crash: `task-api cluster start --ha --sync
// --netns` runs each Patroni member in a network namespace of its own behind a bridge, and
// `cluster partition <leader>` sets its link down. The leader keeps running but reaches nothing
// (etcd, its replica) and nothing reaches it (HAProxy, the API). Several users create tasks
// through NGINX meanwhile. Patroni promotes the other member once the leader key expires; the
// cut-off leader, which cannot renew the key, demotes itself (seen from inside its namespace:
// the host cannot reach it); `cluster heal` brings it back as a replica of the new leader.
// Every write the API acknowledged (201) is there afterwards (synchronous replication); no
// request hung past the client's timeout. `cluster stop` deletes the namespaces, veth pairs and
// bridge it made.
//
// Bounded: the load stops after LOAD_MAX_MS or MAX_REQUESTS, every request after
// CLIENT_TIMEOUT_MS, every wait after its own deadline; nothing asserts how long anything took.
// The cluster is stopped after the file whatever happens (test/helpers/cluster.ts).
import { execFile, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { clusterFixture, HIGH_LIMITS_ENV } from '../helpers/cluster.js';
import { findBinary } from '../../src/operations/cluster/processes.js';

const LOAD_MAX_MS = 240_000;
const MAX_REQUESTS = 40_000;
const CLIENT_TIMEOUT_MS = 10_000;
const PROMOTION_WAIT_MS = 120_000;
const DEMOTION_WAIT_MS = 120_000;
const RECOVERY_WAIT_MS = 90_000;
const REJOIN_WAIT_MS = 180_000;
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
  namespace?: string;
  address?: string;
  partitioned?: boolean;
}

interface Status {
  publicUrl: string;
  allAlive: boolean;
  instances: (Brief & { metricsUrl: string })[];
  shards: { name: string; readUrls: string[] }[];
  postgresHa: { sync: boolean; netns?: boolean; network?: { bridge: string; hostAddress: string; subnet: string }; members: Member[] };
  processes: (Brief & { role: string; port: number; partitioned?: boolean })[];
}

const fx = clusterFixture<Status>('task-api-pg-partition-', ['--ha', '--sync', '--netns', '--instances', '2'], {
  ...HIGH_LIMITS_ENV,
  TASKS_PER_USER_MAX: '1000000',
  LOG_LEVEL: 'warn',
});

const IP = findBinary('ip', process.env.PATH ?? '')!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await sleep(250);
  }
  return false;
}

type Self = { role?: string; state?: string; timeline?: number; sync_standby?: boolean };

/** A member's own view of itself (GET /patroni on its REST API), from the host. */
async function patroni(restUrl: string): Promise<Self> {
  const res = await fetch(`${restUrl}/patroni`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as Self;
}

/**
 * The same from inside a namespace (`ip netns exec <ns> node -e fetch(...)`): how a partitioned
 * member is asked, the host being cut off from it. Asynchronous: the load runs meanwhile.
 */
function patroniFrom(namespace: string, restUrl: string): Promise<Self> {
  const script = `fetch(${JSON.stringify(`${restUrl}/patroni`)}, { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).then((t) => process.stdout.write(t))`;
  return new Promise((resolve, reject) => {
    execFile(IP, ['netns', 'exec', namespace, process.execPath, '-e', script], { timeout: 10_000 }, (err: Error | null, stdout) => {
      if (err) reject(err);
      else resolve(JSON.parse(stdout) as Self);
    });
  });
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
  acknowledged: string[];
}

async function newUser(base: string, i: number): Promise<User> {
  const email = `pg-partition-${Date.now()}-${i}@example.com`;
  const password = 'correct horse battery';
  const reg = await call(base, 'POST', '/v1/auth/register', { body: { email, password } });
  expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  const login = await call(base, 'POST', '/v1/auth/login', { body: { email, password } });
  expect(login.status, JSON.stringify(login.body)).toBe(200);
  return { token: (login.body as { accessToken: string }).accessToken, acknowledged: [] };
}

interface LoadResult {
  statuses: Map<number, number>;
  failures: number;
  without503RetryAfter: number;
  slowestMs: number;
  /** 201s to requests started after `marks.healed`. */
  okAfterHeal: number;
  total: number;
}

async function writeLoad(base: string, users: User[], signal: AbortSignal, marks: { healed: number }): Promise<LoadResult> {
  const r: LoadResult = { statuses: new Map(), failures: 0, without503RetryAfter: 0, slowestMs: 0, okAfterHeal: 0, total: 0 };
  const started = Date.now();
  const worker = async (u: User, w: number) => {
    for (let i = 0; !signal.aborted && r.total < MAX_REQUESTS && Date.now() - started < LOAD_MAX_MS; i++) {
      const t0 = Date.now();
      const res = await call(base, 'POST', '/v1/tasks', { token: u.token, body: { title: `partition ${w}-${i}` } });
      r.total++;
      r.slowestMs = Math.max(r.slowestMs, Date.now() - t0);
      r.statuses.set(res.status, (r.statuses.get(res.status) ?? 0) + 1);
      if (res.status === 0) r.failures++;
      if (res.status === 503 && !res.retryAfter) r.without503RetryAfter++;
      if (res.status === 201) {
        u.acknowledged.push((res.body as { id: string }).id);
        if (marks.healed > 0 && t0 >= marks.healed) r.okAfterHeal++;
      }
      await sleep(25);
    }
  };
  await Promise.all(users.map((u, w) => worker(u, w)));
  return r;
}

let status: Status;

describe('PostgreSQL leader partitioned from its replica and the API (--ha --sync --netns)', () => {
  it('runs each member in a namespace of its own, reached over the bridge', async () => {
    status = fx.started();
    expect(status.allAlive).toBe(true);
    expect(status.postgresHa.netns).toBe(true);
    const net = status.postgresHa.network!;
    expect(net.subnet).toMatch(/^10\.231\.\d+\.0\/24$/);
    const namespaces = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout;
    for (const m of status.postgresHa.members) {
      expect(namespaces).toContain(m.namespace!);
      expect(m.url).toContain(`@${m.address}:`);
      expect(m.restUrl).toContain(`//${m.address}:`);
      expect(m.partitioned).toBe(false);
    }
    // The instances read from the members at their namespace addresses.
    expect(status.shards[0]!.readUrls.every((u) => status.postgresHa.members.some((m) => u.includes(`@${m.address}:`)))).toBe(true);
    const standby = status.postgresHa.members.find((m) => m.role !== 'leader')!;
    const sync = await within(60_000, async () => (await patroni(standby.restUrl)).sync_standby === true);
    expect(sync, `${standby.name} becomes the synchronous standby`).toBe(true);
    // A member that does not run in a namespace cannot be partitioned.
    const wrong = await fx.cluster('partition', 'pgbouncer');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not run in a network namespace/);
  });

  it('promotes the replica when the leader is cut off under writes; the old leader demotes itself and rejoins after heal; no acknowledged write lost', async () => {
    const base = status.publicUrl;
    const leader = status.postgresHa.members.find((m) => m.role === 'leader')!;
    const other = status.postgresHa.members.find((m) => m.name !== leader.name)!;
    const users: User[] = [];
    for (let i = 0; i < USERS; i++) users.push(await newUser(base, i));

    const stop = new AbortController();
    const marks = { healed: 0 };
    const load = writeLoad(base, users, stop.signal, marks);
    const seen: Record<string, unknown> = { leader: leader.name };
    try {
      await sleep(2000);
      const cut = await fx.cluster('partition', leader.name);
      expect(cut.code, cut.stderr).toBe(0);
      const partitionedAt = Date.now();
      const during = await fx.status();
      expect(during.postgresHa.members.find((m) => m.name === leader.name)?.partitioned).toBe(true);
      expect(during.processes.find((p) => p.name === leader.name)?.partitioned).toBe(true);
      // The host reaches it no more: its REST API does not answer.
      expect(await patroni(leader.restUrl).then(() => 'answered', () => 'unreachable')).toBe('unreachable');

      const promoted = await within(PROMOTION_WAIT_MS, async () => (await patroni(other.restUrl)).role === 'master');
      expect(promoted, `${other.name} leads within ${PROMOTION_WAIT_MS} ms of the partition`).toBe(true);
      seen.promotedAfterMs = Date.now() - partitionedAt;
      // The old leader, still running but unable to renew its key, stops being a primary.
      let self: Self = {};
      const demoted = await within(DEMOTION_WAIT_MS, async () => {
        self = await patroniFrom(leader.namespace!, leader.restUrl);
        return self.role !== 'master' && self.role !== 'primary';
      });
      expect(demoted, `${leader.name} demotes itself while partitioned (it says ${JSON.stringify(self)})`).toBe(true);
      seen.oldLeaderWhilePartitioned = self;

      // Writes go to the new leader (NGINX may hold instances out of rotation a while: bounded wait).
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
      if (probe) users.push(probe);

      const healed = await fx.cluster('heal', leader.name);
      expect(healed.code, healed.stderr).toBe(0);
      marks.healed = Date.now();
      const leaderTimeline = (await patroni(other.restUrl)).timeline;
      let me: Self = {};
      const rejoined = await within(REJOIN_WAIT_MS, async () => {
        me = await patroni(leader.restUrl);
        return me.role === 'replica' && me.state === 'running' && me.timeline === leaderTimeline;
      });
      expect(rejoined, `${leader.name} runs as a replica on timeline ${leaderTimeline} after heal (it says ${JSON.stringify(me)})`).toBe(true);
      await sleep(3000);
    } finally {
      stop.abort();
    }
    const result = await load;
    const acknowledged = users.reduce((n, u) => n + u.acknowledged.length, 0);
    const summary = { ...seen, acknowledged, ...result, statuses: Object.fromEntries(result.statuses) };
    console.error('pg partition load', JSON.stringify(summary));

    // None hung past the client's timeout (no request waited on the unreachable leader).
    expect(result.failures, JSON.stringify(summary)).toBe(0);
    const unexpected = [...result.statuses.keys()].filter((code) => ![201, 502, 503].includes(code));
    expect(unexpected, JSON.stringify(summary)).toEqual([]);
    expect(result.without503RetryAfter, JSON.stringify(summary)).toBe(0);
    expect(result.okAfterHeal, JSON.stringify(summary)).toBeGreaterThan(0);

    const now = await fx.status();
    expect(now.postgresHa.members.map((m) => [m.name, m.role === 'leader' ? 'leader' : 'replica', m.partitioned])).toEqual(
      status.postgresHa.members.map((m) => [m.name, m.name === other.name ? 'leader' : 'replica', false]),
    );

    // Every acknowledged write is there (synchronous replication): each read back through NGINX.
    const missing: string[] = [];
    for (const u of users) {
      for (const id of u.acknowledged) {
        const got = await call(base, 'GET', `/v1/tasks/${id}`, { token: u.token });
        if (got.status !== 200) missing.push(`${id}: ${got.status}`);
      }
    }
    expect(missing, `${missing.length} of ${acknowledged} acknowledged tasks not readable`).toEqual([]);
  }, 600_000);

  it('stops every process and deletes the namespaces, veth pairs and bridge it made', async () => {
    const net = status.postgresHa.network!;
    await fx.stopAndCheck();
    const namespaces = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout;
    const links = spawnSync(IP, ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    for (const m of status.postgresHa.members) expect(namespaces).not.toContain(m.namespace!);
    const tag = net.bridge.replace(/-br$/, '');
    expect(links).not.toContain(tag);
  }, 180_000);
});
