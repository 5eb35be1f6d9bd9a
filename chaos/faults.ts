// The fault table: one row per kind of fault, found by role in state.json, so that a topology with
// more processes (Patroni, a RabbitMQ cluster, a separate worker) gets its rows by itself. A row
// says whether it applies to the running cluster (or why not), injects the fault and returns what
// heals it. Processes are acted on through the cluster CLI (kill, start-one) or signalled by the
// pid state.json records (SIGSTOP/SIGCONT): nothing is found or signalled by name.
import type { ClusterState, ProcessRecord } from '../src/operations/cluster/state.js';
import { isStopped, sentinelMasterPort, signalRecorded, type ChaosCluster } from './cluster.js';

/** What an outage of a fault takes away: another fault whose heal needs it may not overlap it. */
export type Resource = 'db' | 'redis' | 'broker' | 'api';

export interface FaultContext {
  cluster: ChaosCluster;
  /** Short mode: shorter holds. */
  short: boolean;
  /** The client's timeout: a stop must outlast it. */
  requestTimeoutMs: number;
  say: (line: string) => void;
  /** How many times this row has been injected before (to rotate over the instances of a role). */
  round: number;
}

export interface Injected {
  /** The process(es) the fault hit. */
  target: string;
  heal: () => Promise<void>;
}

export interface FaultRow {
  name: string;
  /** null when the fault applies to this cluster; otherwise why not (reported). */
  applicable: (state: ClusterState) => string | null;
  /** How long the fault lasts before it is healed. */
  holdMs: (ctx: FaultContext) => number;
  /** What the fault takes away while it lasts. */
  takes: Resource[];
  /** What healing it needs (an API instance's start waits for /health, which needs the database). */
  healNeeds: Resource[];
  inject: (ctx: FaultContext) => Promise<Injected>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Role is a closed union in this build; the merged topologies add roles (patroni, worker, ...).
const ofRole = (state: ClusterState, role: string) => state.processes.filter((p) => (p.role as string) === role && p.shard === undefined);
const pick = <T>(list: T[], round: number): T => list[round % list.length]!;

/** kill -9 of a recorded process by name, start-one to heal: the common row. */
function killAndRestart(name: string, role: string, holdMs: (ctx: FaultContext) => number, extra: Partial<FaultRow> = {}, choose?: (state: ClusterState, round: number) => Promise<ProcessRecord>): FaultRow {
  return {
    name,
    applicable: (state) => (ofRole(state, role).length > 0 ? null : `no ${role} process in this topology`),
    holdMs,
    takes: [],
    healNeeds: [],
    ...extra,
    inject: async (ctx) => {
      const state = ctx.cluster.state();
      const rec = choose ? await choose(state, ctx.round) : pick(ofRole(state, role), ctx.round);
      await ctx.cluster.kill(rec.name);
      return { target: rec.name, heal: async () => void (await ctx.cluster.startOne(rec.name)) };
    },
  };
}

export const FAULTS: FaultRow[] = [
  // An API instance crashes; NGINX retries reads and keyed writes on the others. Its start waits
  // for /health 200, which needs the database: it must not wait behind a database fault.
  killAndRestart('api-kill', 'api', () => 3000, {
    applicable: (state) => (ofRole(state, 'api').length >= 2 ? null : 'fewer than 2 API instances: nothing to fail over to'),
    takes: ['api'],
    healNeeds: ['db'],
  }),
  // A streaming replica crashes: reads go to the other replicas or the primary.
  killAndRestart('replica-kill', 'postgres-replica', (c) => (c.short ? 5000 : 8000)),
  // PgBouncer crashes: the instances answer 503 with Retry-After, clients retry their keyed writes.
  killAndRestart('pgbouncer-kill', 'pgbouncer', (c) => (c.short ? 5000 : 8000), { takes: ['db'] }),
  // The Redis master crashes: with Sentinel, the one the Sentinels name now (after a failover it
  // is `redis-replica-1`), and the replica is promoted; without, Redis is down until healed (token
  // store fails closed, cache fails open, limiter falls back to memory, keyed writes 503).
  {
    name: 'redis-master-kill',
    applicable: (state) => (ofRole(state, 'redis').length > 0 ? null : 'no redis process'),
    holdMs: (c) => (c.short ? 8000 : 12000),
    takes: ['redis'],
    healNeeds: [],
    inject: async (ctx) => {
      const state = ctx.cluster.state();
      let rec = ofRole(state, 'redis')[0]!;
      if (state.redisSentinel) {
        const port = await sentinelMasterPort(state);
        const master = state.processes.find((p) => (p.role === 'redis' || p.role === 'redis-replica') && p.port === port);
        if (!master) throw new Error(`no recorded Redis server on the port the Sentinels name as master (${port})`);
        rec = master;
      }
      await ctx.cluster.kill(rec.name);
      return { target: rec.name, heal: async () => void (await ctx.cluster.startOne(rec.name)) };
    },
  },
  // A separate notifications worker (the consumer) crashes: messages wait in the quorum queue.
  killAndRestart('worker-kill', 'worker', () => 5000, {
    applicable: (state) =>
      ofRole(state, 'worker').length > 0 ? null : 'no worker process: the notifications consumer runs inside the api instances (api-kill crashes one)',
    takes: [],
    healNeeds: ['db'],
  }),
  // A RabbitMQ node crashes (one of them, in turn, when clustered): the outbox holds the events
  // until the relay can publish again with confirms.
  killAndRestart('rabbitmq-kill', 'rabbitmq', (c) => (c.short ? 5000 : 10000), { takes: ['broker'] }),
  // PostgreSQL (the primary and its backends, its process group) frozen for longer than the
  // client's timeout: no answer, no error, the worst kind of outage.
  {
    name: 'pg-primary-stop',
    applicable: (state) => (ofRole(state, 'postgres-primary').length > 0 ? null : 'no postgres-primary process (Patroni: see patroni-primary-kill)'),
    holdMs: (c) => c.requestTimeoutMs + (c.short ? 2000 : 5000),
    takes: ['db'],
    healNeeds: [],
    inject: async (ctx) => {
      const rec = ofRole(ctx.cluster.state(), 'postgres-primary')[0]!;
      const stopped = signalRecorded(rec, 'SIGSTOP');
      for (let i = 0; i < 20 && !isStopped(rec.pid!); i++) await sleep(50);
      if (!isStopped(rec.pid!)) throw new Error(`${rec.name} (pid ${rec.pid}) is not stopped after SIGSTOP`);
      return {
        target: `${rec.name} (${stopped.length} processes)`,
        heal: async () => {
          // The postmaster and every child of it now (the same ones: a stopped postmaster forks none).
          signalRecorded(rec, 'SIGCONT');
          await sleep(0);
        },
      };
    },
  },
  // After the ha-pg merge: the Patroni leader crashes and a replica is promoted. The leader is the
  // member whose REST API answers 200 on /primary.
  killAndRestart('patroni-primary-kill', 'patroni', (c) => (c.short ? 10000 : 15000), { takes: ['db'], healNeeds: [] }, async (state) => {
    for (const rec of ofRole(state, 'patroni')) {
      const api = rec.urls.api ?? rec.urls.restUrl ?? rec.urls.url;
      if (!api?.startsWith('http')) continue;
      try {
        const res = await fetch(new URL('/primary', api), { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return rec;
      } catch {
        // the next member
      }
    }
    throw new Error('no Patroni member answers 200 on /primary');
  }),
  {
    name: 'pg-netns-partition',
    applicable: () => 'needs the network namespaces of the ha-pg topology (not in this build): a row to fill once merged',
    holdMs: () => 0,
    takes: ['db'],
    healNeeds: [],
    inject: () => Promise.reject(new Error('not applicable')),
  },
];

/** The rows that apply to the cluster, and the others with the reason. */
export function applicableFaults(state: ClusterState, rows: FaultRow[] = FAULTS, only?: string[]) {
  const apply: FaultRow[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const row of rows) {
    const reason = only && !only.includes(row.name) ? 'not chosen (--faults)' : row.applicable(state);
    if (reason === null) apply.push(row);
    else skipped.push({ name: row.name, reason });
  }
  return { apply, skipped };
}

/** Whether two faults may be in force at once: neither takes away what the other's heal needs. */
export const mayOverlap = (a: FaultRow, b: FaultRow) =>
  a.name !== b.name && !a.takes.some((r) => b.healNeeds.includes(r)) && !b.takes.some((r) => a.healNeeds.includes(r)) && !a.takes.some((r) => b.takes.includes(r));
