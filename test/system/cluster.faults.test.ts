// The scale-out topology proven under load: the whole cluster (`task-api cluster start`: a
// PostgreSQL primary and a streaming replica, PgBouncer, Redis, RabbitMQ, three API instances,
// NGINX, Prometheus) on loopback ports, the mixed workload through NGINX, and one fault at a time:
// a rolling restart, an instance killed with SIGKILL, the replica killed and brought back,
// PgBouncer killed and brought back. After each, the lost-write checker (loadtest/writes.ts)
// compares every write the clients attempted with the rows the primary holds.
//
// Bounded: each load runs at most LOAD_MAX_MS and MAX_REQUESTS; every process is the cluster's
// and is stopped by `cluster stop` (by pid) after the file (test/helpers/cluster.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMixedLoad, type LoadUser, type MixedLoadResult } from '../../loadtest/mixed-load.js';
import { checkWrites, summarizeCheck } from '../../loadtest/writes.js';
import { clusterFixture, HIGH_LIMITS_ENV } from '../helpers/cluster.js';
import { runScript } from '../helpers/process.js';

const LOAD_MAX_MS = 120_000;
// Enough for load to last the whole roll (about 40 s) on a fast machine; the time bound stops it first.
const MAX_REQUESTS = 150_000;
const USERS = 6;
const CONCURRENCY = 6;

interface Status {
  publicUrl: string;
  allAlive: boolean;
  instances: { name: string; url: string; pid: number | null; alive: boolean; metricsUrl: string }[];
  primary: { url: string };
  replicas: { name: string; url: string; alive: boolean }[];
  pgbouncer: { name: string; url: string; alive: boolean };
}

const fx = clusterFixture<Status>('task-api-cluster-faults-', ['--instances', '3', '--replicas', '1'], {
  // The load comes from one address: the edge's and the API's per-client limits lifted.
  ...HIGH_LIMITS_ENV,
  TASKS_PER_USER_MAX: '1000000',
  LOG_LEVEL: 'warn',
  // A claim whose instance died is taken over after this; the create it made is found by its
  // id (derived from the key), so taking over never makes a second row.
  IDEMPOTENCY_LEASE_MS: '3000',
});
let status: Status;
let sql: postgres.Sql;
const users: LoadUser[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cluster(...args: string[]) {
  const res = await fx.cluster(...args);
  if (res.code !== 0) throw new Error(`cluster ${args.join(' ')} exited ${res.code}: ${res.stderr.slice(-3000)}`);
  return res;
}

/** A built tool (build/...) of this repository, run to its end. */
const readStatus = () => fx.status();

/** Runs `during` while the mixed load runs, then lets the load run `settleMs` more and stops it. */
async function underLoad(runTag: string, writeRetries: number, during: () => Promise<void>, settleMs = 1500): Promise<MixedLoadResult> {
  const stop = new AbortController();
  const load = runMixedLoad({
    baseUrl: status.publicUrl,
    users,
    concurrency: CONCURRENCY,
    durationMs: LOAD_MAX_MS,
    maxRequests: MAX_REQUESTS,
    writeRetries,
    requestTimeoutMs: 20_000,
    runTag,
    signal: stop.signal,
  });
  try {
    await sleep(1000);
    await during();
    await sleep(settleMs);
  } finally {
    stop.abort();
  }
  return load;
}

async function checkAgainstPrimary(res: MixedLoadResult, runTag: string) {
  const rows = await sql<{ id: string; userId: string; title: string }[]>`
    select id, user_id as "userId", title from tasks where title like ${runTag + '-%'}`;
  const check = checkWrites(res.writes, rows, (t) => t.startsWith(`${runTag}-`));
  const retried = res.writes.attempts().filter((a) => a.tries > 1).length;
  // The figures of the run, for the log: what the load met and what the checker found.
  console.error(`[${runTag}] ${res.requests} requests, answers ${JSON.stringify(res.byStatus)}; writes retried by the client ${retried}; ${summarizeCheck(check)}`);
  return check;
}

/** Answers of the run that are not 2xx, grouped: status (or network error) -> count. */
const nonOk = (res: MixedLoadResult) =>
  Object.fromEntries(Object.entries(res.byStatus).filter(([k]) => !/^2\d\d$/.test(k)));

beforeAll(async () => {
  status = await readStatus();
  expect(status.allAlive).toBe(true);
  sql = postgres(status.primary.url, { max: 2 });
  for (let i = 0; i < USERS; i++) {
    const res = await fetch(`${status.publicUrl}/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `faults-${i}-${Date.now()}@example.com`, password: 'correct horse battery staple', name: `Load ${i}` }),
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { accessToken: string; user: { id: string } };
    users.push({ id: body.user.id, token: body.accessToken, taskIds: [] });
  }
}, 240_000);

afterAll(async () => {
  await sql?.end();
});

describe('the cluster under load', () => {
  it('npm run loadtest runs against the cluster status names (--cluster): every threshold held', async () => {
    const out = path.join(fx.dir(), 'loadtest.json');
    const res = await runScript('build/loadtest/run.js', ['--smoke', '--cluster', fx.dir(), '--out', out, '--quiet']);
    expect(res.code, res.stderr.slice(-2000)).toBe(0);
    const report = JSON.parse(readFileSync(out, 'utf8')) as { target: { url: string } };
    expect(report.target.url).toBe(status.publicUrl);
  }, 120_000);

  it('a rolling restart of every instance: zero non-2xx answers, zero socket errors, every write stored once', async () => {
    const before = (await readStatus()).instances.map((i) => i.pid);
    const res = await underLoad('roll', 0, async () => {
      await cluster('roll');
    });
    const after = await readStatus();
    expect(after.instances.every((i) => i.alive)).toBe(true);
    // Every instance was replaced.
    after.instances.forEach((inst, n) => expect(inst.pid).not.toBe(before[n]));
    expect(res.requests).toBeGreaterThan(100);
    expect(nonOk(res), JSON.stringify(res.failures.slice(0, 5))).toEqual({});
    const check = await checkAgainstPrimary(res, 'roll');
    expect(check.acknowledged).toBe(check.attempted);
    expect([check.ackedMissing, check.duplicates, check.neverAttempted, check.wrongId], summarizeCheck(check)).toEqual([[], [], [], []]);
  }, 300_000);

  it('kill -9 of one instance mid-load: every read answered, every keyed write exactly once', async () => {
    const res = await underLoad('kill', 60, async () => {
      await cluster('kill', 'api-2');
      await sleep(3000);
      await cluster('start-one', 'api-2');
    });
    expect(res.failedReads, JSON.stringify(res.failures.filter((f) => f.method === 'GET').slice(0, 5))).toBe(0);
    const check = await checkAgainstPrimary(res, 'kill');
    // The clients retried every write with its key until it was answered.
    expect(check.acknowledged, summarizeCheck(check)).toBe(check.attempted);
    expect([check.ackedMissing, check.duplicates, check.neverAttempted, check.wrongId], summarizeCheck(check)).toEqual([[], [], [], []]);
    expect((await readStatus()).allAlive).toBe(true);
  }, 300_000);

  it('the replica killed: reads keep answering from the primary; back, it is used again', async () => {
    const routed = async () => {
      let total = 0;
      for (const inst of (await readStatus()).instances) {
        const text = await (await fetch(inst.metricsUrl)).text();
        for (const line of text.split('\n')) {
          if (line.startsWith('db_reads_routed_total') && line.includes('target="replica"')) total += Number(line.split(' ').at(-1));
        }
      }
      return total;
    };
    const res = await underLoad('replica', 60, async () => {
      await cluster('kill', 'replica-1');
      await sleep(3000);
      await cluster('start-one', 'replica-1');
    });
    expect(res.failedReads, JSON.stringify(res.failures.slice(0, 5))).toBe(0);
    const check = await checkAgainstPrimary(res, 'replica');
    expect([check.ackedMissing, check.duplicates, check.neverAttempted, check.wrongId], summarizeCheck(check)).toEqual([[], [], [], []]);
    // Used again: reads routed to the replica grow once it is back.
    const before = await routed();
    let after = before;
    for (let i = 0; i < 100 && after <= before; i++) {
      const user = users[i % users.length]!;
      await (await fetch(`${status.publicUrl}/v1/tasks?limit=${1 + (i % 100)}&status=todo`, { headers: { authorization: `Bearer ${user.token}` } })).arrayBuffer();
      after = await routed();
      if (after <= before) await sleep(200);
    }
    expect(after).toBeGreaterThan(before);
  }, 300_000);

  it('PgBouncer killed: requests fail fast with 503 and Retry-After, none hangs, and recover when it is back', async () => {
    const user = users[0]!;
    const headers = { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' };
    await cluster('kill', 'pgbouncer');
    const answers: { status: number; retryAfter: string | null }[] = [];
    for (let i = 0; i < 10; i++) {
      // Creates always reach the database (a list could be a cache hit).
      const res = await fetch(`${status.publicUrl}/v1/tasks`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ title: `bouncer-down-${i}` }),
        signal: AbortSignal.timeout(15_000),
      });
      await res.arrayBuffer();
      answers.push({ status: res.status, retryAfter: res.headers.get('retry-after') });
    }
    expect(answers.every((a) => a.status === 503 && a.retryAfter !== null), JSON.stringify(answers)).toBe(true);
    await cluster('start-one', 'pgbouncer');
    let back = 0;
    for (let i = 0; i < 100 && back !== 201; i++) {
      const res = await fetch(`${status.publicUrl}/v1/tasks`, { method: 'POST', headers, body: JSON.stringify({ title: `bouncer-back-${i}` }) });
      await res.arrayBuffer();
      back = res.status;
      if (back !== 201) await sleep(200);
    }
    expect(back).toBe(201);
  }, 120_000);
});
