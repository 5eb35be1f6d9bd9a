// RabbitMQ high availability proven on the local topology: `task-api cluster start
// --rabbit-cluster` (three RabbitMQ nodes in one cluster, the consumers' queues and their
// dead-letter queues quorum queues with a member on each node; each API instance's AMQP_URL lists
// every node). Tasks are created through NGINX by a few users while each node in turn is killed
// with SIGKILL (the Erlang VM), events flow again with it down (the instances reconnect to another
// node), and it is started again and rejoins before the next one goes: two of three are always up.
// Afterwards every acknowledged task's task.created took effect exactly once in the notifications
// consumer (one processed_events row, one in-app notification), nothing was dead-lettered, and
// the outbox is empty.
//
// Bounded: the load stops after LOAD_MAX_MS or MAX_REQUESTS, every request after
// CLIENT_TIMEOUT_MS, every wait after its own deadline; the cluster is stopped after the file
// whatever happens (test/helpers/cluster.ts). Nothing is asserted on timing.
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { rabbitCtl, runningNodes, type RabbitCtlTarget } from '../../src/operations/cluster/rabbitmq.js';
import { clusterFixture, HIGH_LIMITS_ENV } from '../helpers/cluster.js';

const LOAD_MAX_MS = 420_000;
const MAX_REQUESTS = 20_000;
const CLIENT_TIMEOUT_MS = 15_000;
/** With a node down: until a task created after the kill has its notification. */
const FLOWING_WAIT_MS = 90_000;
/** A restarted node: running in the cluster, and a live member of the queues' quorums again. */
const REJOIN_WAIT_MS = 120_000;
/** After the load: until the outbox is empty and every acknowledged event took effect. */
const SETTLE_WAIT_MS = 120_000;
const USERS = 4;
const EXCHANGE = 'task-api.events';
/** The queues the monolith declares: the consumers' (quorum) and their dead-letter queues (quorum). */
const CONSUMERS = ['notifications', 'notifications-accounts', 'tasks-accounts'];

interface Brief {
  name: string;
  url: string;
  pid: number | null;
  alive: boolean;
  logFile: string;
}

interface RabbitNode extends Brief {
  nodename: string;
  home: string;
}

interface Status {
  publicUrl: string;
  allAlive: boolean;
  primary: Brief;
  instances: (Brief & { metricsUrl: string })[];
  rabbitCluster: { nodes: RabbitNode[] };
  processes: (Brief & { role: string; port: number; nodename?: string })[];
}

const fx = clusterFixture<Status>('task-api-rabbit-cluster-', ['--rabbit-cluster', '--instances', '2', '--replicas', '0'], {
  ...HIGH_LIMITS_ENV,
  TASKS_PER_USER_MAX: '1000000',
  // info: the bus's "rabbitmq connected" lines (one per connection made) are counted below.
  LOG_LEVEL: 'info',
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const target = (n: RabbitNode): RabbitCtlTarget => ({ nodename: n.nodename, home: n.home, path: process.env.PATH ?? '' });

/** Polls `check` every 500 ms until it holds or `ms` passed; returns whether it held. */
async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await sleep(500);
  }
  return false;
}

interface QuorumMember {
  'Node Name': string;
  'Raft State': string | string[];
}

/** The queue's members and their Raft state, as the node sees them (rabbitmq-queues quorum_status). */
async function quorumStatus(node: RabbitNode, queue: string): Promise<QuorumMember[]> {
  return JSON.parse(await rabbitCtl(target(node), 'rabbitmq-queues', ['quorum_status', queue, '--formatter', 'json'])) as QuorumMember[];
}

const live = (m: QuorumMember) => m['Raft State'] === 'leader' || m['Raft State'] === 'follower';

interface Reply {
  status: number;
  body: unknown;
}

/** One request through NGINX; a timeout or a network error is status 0. */
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

interface Load {
  /** Task ids answered 201, in the order acknowledged. */
  acked: string[];
  statuses: Map<number, number>;
  total: number;
}

/** Creates tasks as every user, one at a time each, until the signal or a bound. */
async function createTasks(base: string, tokens: string[], signal: AbortSignal, load: Load): Promise<void> {
  const started = Date.now();
  const worker = async (token: string, w: number) => {
    for (let i = 0; !signal.aborted && load.total < MAX_REQUESTS && Date.now() - started < LOAD_MAX_MS; i++) {
      const res = await call(base, 'POST', '/v1/tasks', { token, body: { title: `rc ${w}-${i}` }, key: `rc-${w}-${i}-${started}` });
      load.total++;
      load.statuses.set(res.status, (load.statuses.get(res.status) ?? 0) + 1);
      if (res.status === 201) load.acked.push((res.body as { id: string }).id);
      await sleep(25);
    }
  };
  await Promise.all(tokens.map((t, w) => worker(t, w)));
}

/** The metric's value summed over every instance (a counter of a consumer or an event type). */
async function metricSum(status: Status, name: string, label?: string): Promise<number> {
  let sum = 0;
  for (const i of status.instances) {
    const text = await (await fetch(i.metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
    for (const line of text.split('\n')) {
      if (!line.startsWith(name) || (label && !line.includes(label))) continue;
      const m = /^[a-z_]+(\{[^}]*\})? ([0-9.e+]+)$/.exec(line);
      if (m) sum += Number(m[2]);
    }
  }
  return sum;
}

let status: Status;
let sql: postgres.Sql | undefined;

afterAll(async () => {
  await sql?.end({ timeout: 5 });
});

describe('RabbitMQ cluster: a node killed at a time under load', () => {
  it('starts three nodes in one cluster; every queue is a quorum queue with a member on each node', async () => {
    status = fx.started();
    expect(status.allAlive).toBe(true);
    const nodes = status.rabbitCluster.nodes;
    expect(nodes.map((n) => n.name)).toEqual(['rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3']);
    expect(new Set(nodes.map((n) => n.nodename)).size).toBe(3);
    // Never the machine's broker: each node on a port of its own.
    for (const n of nodes) expect(new URL(n.url).port).not.toBe('5672');
    expect((await runningNodes(target(nodes[0]!))).sort()).toEqual(nodes.map((n) => n.nodename).sort());
    const queues = JSON.parse(await rabbitCtl(target(nodes[1]!), 'rabbitmqctl', ['list_queues', 'name', 'type', 'durable', '--formatter', 'json'])) as {
      name: string;
      type: string;
      durable: boolean;
    }[];
    const expected = CONSUMERS.flatMap((c) => [`${EXCHANGE}.${c}`, `${EXCHANGE}.${c}.dead`]).sort();
    expect(queues.map((q) => q.name).sort()).toEqual(expected);
    for (const q of queues) expect({ name: q.name, type: q.type, durable: q.durable }).toEqual({ name: q.name, type: 'quorum', durable: true });
    for (const q of expected) {
      const members = await quorumStatus(nodes[2]!, q);
      expect(members.map((m) => m['Node Name']).sort(), q).toEqual(nodes.map((n) => n.nodename).sort());
    }
    const exchanges = JSON.parse(await rabbitCtl(target(nodes[0]!), 'rabbitmqctl', ['list_exchanges', 'name', 'durable', '--formatter', 'json'])) as { name: string; durable: boolean }[];
    expect(exchanges.filter((e) => e.name.startsWith(EXCHANGE))).toEqual(
      expect.arrayContaining([
        { name: EXCHANGE, durable: true },
        { name: `${EXCHANGE}.dead`, durable: true },
      ]),
    );
  }, 120_000);

  it('keeps publishing and consuming while each node in turn is down; every acknowledged event takes effect once', async () => {
    const base = status.publicUrl;
    const nodes = status.rabbitCluster.nodes;
    sql = postgres(status.primary.url, { max: 2 });
    const db = sql;
    const tokens: string[] = [];
    const userIds: string[] = [];
    for (let i = 0; i < USERS; i++) {
      const reg = await call(base, 'POST', '/v1/auth/register', { body: { email: `rc-${Date.now()}-${i}@example.com`, password: 'correct horse battery' } });
      expect(reg.status, JSON.stringify(reg.body)).toBe(201);
      const body = reg.body as { accessToken: string; user: { id: string } };
      tokens.push(body.accessToken);
      userIds.push(body.user.id);
    }
    /** Whether the task's task.created has its in-app notification. */
    const notified = async (taskId: string) =>
      (await db<{ n: number }[]>`select count(*)::int as n from notifications where task_id = ${taskId} and type = 'task.created'`)[0]!.n > 0;

    const load: Load = { acked: [], statuses: new Map(), total: 0 };
    const stop = new AbortController();
    const running = createTasks(base, tokens, stop.signal, load);
    const rounds: { node: string; connectionsOnIt: number; ackedBefore: number; flowing: boolean; rejoined: boolean }[] = [];
    try {
      await sleep(2000);
      for (const node of nodes) {
        const others = nodes.filter((n) => n !== node);
        // The instances' connections on the node about to go (each instance has one). The list is
        // the cluster's; a connection's name ends with the address it came in on ("peer -> host:port").
        const connections = await rabbitCtl(target(node), 'rabbitmqctl', ['list_connections', 'name', '--formatter', 'json']).then(
          (out) => (JSON.parse(out) as { name: string }[]).filter((c) => c.name.endsWith(`-> ${new URL(node.url).host}`)).length,
          () => -1,
        );
        const ackedBefore = load.acked.length;
        const killed = await fx.cluster('kill', node.name);
        expect(killed.code, killed.stderr).toBe(0);
        // Events flow with the node down: a task created after the kill (each user has one request
        // in flight at most, so the USERS-th acknowledged from now on was sent after it) reaches its consumer.
        const ackedAtKill = load.acked.length;
        const flowing = await within(FLOWING_WAIT_MS, async () => {
          const after = load.acked.slice(ackedAtKill + USERS);
          return after.length > 0 && (await notified(after[after.length - 1]!));
        });
        await sleep(2000);
        const started = await fx.cluster('start-one', node.name);
        expect(started.code, started.stderr).toBe(0);
        // Rejoined: running in the cluster as another node sees it, and a live member of every quorum.
        const rejoined = await within(REJOIN_WAIT_MS, async () => {
          const running = await runningNodes(target(others[0]!));
          if (!nodes.every((n) => running.includes(n.nodename))) return false;
          for (const c of CONSUMERS) {
            const members = await quorumStatus(others[0]!, `${EXCHANGE}.${c}`);
            if (members.length !== 3 || !members.every(live)) return false;
          }
          return true;
        });
        rounds.push({ node: node.name, connectionsOnIt: connections, ackedBefore, flowing, rejoined });
        expect(flowing, `a task created after ${node.name} was killed is notified within ${FLOWING_WAIT_MS} ms (${JSON.stringify(rounds)})`).toBe(true);
        expect(rejoined, `${node.name} rejoins the cluster and its quorums within ${REJOIN_WAIT_MS} ms`).toBe(true);
        await sleep(2000);
      }
    } finally {
      stop.abort();
      await running;
    }

    // Settled: the outbox empty, and every acknowledged task's event applied.
    const pending = async () => (await db<{ n: number }[]>`select count(*)::int as n from outbox where published_at is null`)[0]!.n;
    const missing = async () =>
      (
        await db<{ n: number }[]>`
          select count(*)::int as n from unnest(${load.acked}::uuid[]) as a(id)
          where not exists (select 1 from notifications n where n.task_id = a.id and n.type = 'task.created')`
      )[0]!.n;
    const settled = await within(SETTLE_WAIT_MS, async () => (await pending()) === 0 && (await missing()) === 0);

    // Exactly once in effect, per acknowledged task: its task.created in the outbox (published),
    // one processed_events row of the notifications consumer for that event, one notification.
    const rows = await db<{ task_id: string; events: number; published: number; processed: number; notes: number }[]>`
      select a.id::text as task_id,
        (select count(*)::int from outbox o where o.aggregate_id = a.id and o.type = 'task.created') as events,
        (select count(*)::int from outbox o where o.aggregate_id = a.id and o.type = 'task.created' and o.published_at is not null) as published,
        (select count(*)::int from processed_events p join outbox o on o.id = p.event_id
          where p.consumer = 'notifications' and o.aggregate_id = a.id and o.type = 'task.created') as processed,
        (select count(*)::int from notifications n where n.task_id = a.id and n.type = 'task.created') as notes
      from unnest(${load.acked}::uuid[]) as a(id)`;
    const wrong = rows.filter((r) => r.events !== 1 || r.published !== 1 || r.processed !== 1 || r.notes !== 1);
    // And nothing the clients did not get a 201 for: the users' tasks are exactly the acknowledged ones.
    const stored = await db<{ id: string }[]>`select id::text as id from tasks where user_id = any(${userIds}::uuid[])`;

    const logs = status.instances.map((i) => readFileSync(i.logFile, 'utf8'));
    const summary = {
      rounds,
      requests: load.total,
      statuses: Object.fromEntries(load.statuses),
      acknowledged: load.acked.length,
      settled,
      wrong: wrong.length,
      published: await metricSum(status, 'events_published_total', 'type="task.created"'),
      consumed: await metricSum(status, 'events_consumed_total', 'consumer="notifications"'),
      consumeFailures: await metricSum(status, 'events_consume_failures_total'),
      deadLettered: await metricSum(status, 'events_dead_lettered_total'),
      publishFailures: await metricSum(status, 'events_publish_failures_total'),
      connectionsMade: logs.map((l) => l.split('\n').filter((line) => line.includes('"msg":"rabbitmq connected"')).length),
      connectionsLost: logs.map((l) => l.split('\n').filter((line) => line.includes('"msg":"rabbitmq connection closed"')).length),
    };
    console.error('rabbit cluster load', JSON.stringify(summary));

    expect(load.acked.length, JSON.stringify(summary)).toBeGreaterThan(0);
    // The broker is behind the outbox: a node down never costs a request.
    expect([...load.statuses.keys()], JSON.stringify(summary)).toEqual([201]);
    expect(settled, JSON.stringify(summary)).toBe(true);
    expect(wrong.slice(0, 5), JSON.stringify(summary)).toEqual([]);
    expect(stored.map((r) => r.id).sort()).toEqual([...load.acked].sort());
    // Delivered at least once (a redelivery after a lost connection is counted, and had no effect).
    expect(summary.consumed).toBeGreaterThanOrEqual(load.acked.length);
    expect(summary.deadLettered, JSON.stringify(summary)).toBe(0);
    for (const c of CONSUMERS) {
      const dead = JSON.parse(await rabbitCtl(target(nodes[0]!), 'rabbitmqctl', ['list_queues', 'name', 'messages', '--formatter', 'json'])) as { name: string; messages: number }[];
      expect(dead.find((q) => q.name === `${EXCHANGE}.${c}.dead`)?.messages, c).toBe(0);
    }
    // Every instance lost its connection at least once and made a new one (to another node).
    for (const [i, lost] of summary.connectionsLost.entries()) {
      expect(lost, `${status.instances[i]!.name} lost a connection`).toBeGreaterThan(0);
      expect(summary.connectionsMade[i], `${status.instances[i]!.name} reconnected`).toBeGreaterThan(lost);
    }
    // The same instances throughout.
    expect((await fx.status()).instances.map((i) => [i.pid, i.alive])).toEqual(status.instances.map((i) => [i.pid, true]));
  }, 900_000);

  it('stops every process it started', async () => {
    await fx.stopAndCheck();
  }, 180_000);
});
