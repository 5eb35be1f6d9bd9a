// The fault table: one row per kind of fault, found by role in state.json, so that a topology with
// more processes (Patroni, a RabbitMQ cluster, a separate worker) gets its rows by itself. A row
// says whether it applies to the running cluster (or why not), injects the fault and returns what
// heals it. Processes are acted on through the cluster CLI (kill, start-one) or signalled by the
// pid state.json records (SIGSTOP/SIGCONT): nothing is found or signalled by name.
import { CLUSTER_USAGE } from '../src/operations/cluster/index.js';
import { running } from '../src/operations/cluster/roles.js';
import type { ClusterState, ProcessRecord } from '../src/operations/cluster/state.js';
import { PATRONI_TIMING, postmasterPid } from '../src/operations/cluster/patroni.js';
import { isStopped, patroniLeader, patroniMembers, sentinelMasterPort, signalPids, signalRecorded, signalTree, waitPatroniWhole, waitPatroniWritable, type ChaosCluster } from './cluster.js';

/**
 * What an outage of a fault takes away: another fault whose heal needs it may not overlap it.
 * 'standby': a PostgreSQL standby (with Patroni, the member a failover promotes): a fault of the
 * leader whose heal waits for a leader must not overlap a replica's crash.
 */
export type Resource = 'db' | 'standby' | 'redis' | 'broker' | 'api';

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
// By name of role (a string: a state.json of another build may hold roles this one lacks).
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

/** pg-netns-partition's applicability: Patroni members recorded in network namespaces, and a `cluster partition` command. */
export function netnsPartitionApplies(state: ClusterState, usage = CLUSTER_USAGE): string | null {
  const members = patroniMembers(state);
  if (members.length >= 2 && state.postgresHa?.netns === true && members.every((m) => m.host !== undefined) && /\bpartition\b/.test(usage)) return null;
  return 'needs Patroni members in network namespaces (cluster start --ha --netns) and cluster partition|heal <member>: not in this build';
}

export const FAULTS: FaultRow[] = [
  // An API instance crashes; NGINX retries reads and keyed writes on the others. Its start waits
  // for /health 200, which needs the database: it must not wait behind a database fault.
  killAndRestart('api-kill', 'api', () => 3000, {
    applicable: (state) => (ofRole(state, 'api').length >= 2 ? null : 'fewer than 2 API instances: nothing to fail over to'),
    takes: ['api'],
    healNeeds: ['db'],
  }),
  // A streaming replica crashes: reads go to the other replicas or the primary. With Patroni the
  // replicas are members: a member that does not lead now, in turn (`cluster kill` takes its
  // PostgreSQL with it; start-one starts Patroni, which starts it as a replica again). With --sync
  // it is the synchronous standby: commits wait until the leader's Patroni drops it from
  // synchronous_standby_names (synchronous_mode_strict off), about a loop_wait.
  {
    name: 'replica-kill',
    applicable: (state) =>
      ofRole(state, 'postgres-replica').length > 0 || patroniMembers(state).length >= 2 ? null : 'no postgres-replica process and fewer than 2 Patroni members',
    holdMs: (c) => (c.short ? 5000 : 8000),
    takes: ['standby'],
    healNeeds: [],
    inject: async (ctx) => {
      const state = ctx.cluster.state();
      let rec: ProcessRecord;
      if (ofRole(state, 'postgres-replica').length > 0) rec = pick(ofRole(state, 'postgres-replica'), ctx.round);
      else {
        const leader = await patroniLeader(state);
        if (!leader) throw new Error('no Patroni member leads: no replica to tell apart');
        rec = pick(
          patroniMembers(state).filter((m) => m.name !== leader.name),
          ctx.round,
        );
      }
      await ctx.cluster.kill(rec.name);
      const patroni = rec.role === 'patroni';
      return {
        target: rec.name,
        heal: async () => {
          if (!running(ctx.cluster.state().processes.find((p) => p.name === rec.name)!)) await ctx.cluster.startOne(rec.name);
          // It streams again (the synchronous standby again, with --sync) before the next fault.
          if (patroni) await waitPatroniWhole(ctx.cluster.state(), 180_000);
        },
      };
    },
  },
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
  // PostgreSQL (the primary and its backends) frozen for longer than the client's timeout: no
  // answer, no error, the worst kind of outage. With Patroni, the leader's postmaster (its data
  // directory's postmaster.pid) and its children, not Patroni: Patroni's queries to it hang, it
  // cannot renew the leader key, and when the hold outlasts ttl the standby may take over (the
  // frozen server is demoted once it runs again). The heal is SIGCONT to every pid that was
  // stopped (and to the member's postmaster and children now), then, with Patroni, a wait until a
  // member leads and HAProxy routes writes to it.
  {
    name: 'pg-primary-stop',
    applicable: (state) =>
      ofRole(state, 'postgres-primary').length > 0 || patroniMembers(state).length > 0 ? null : 'no postgres-primary process and no Patroni member',
    // With Patroni, every other round (the first, so a short run too) holds past the leader key's
    // ttl: the standby is promoted while the old leader is frozen, and the old one must step down
    // when it runs again (Patroni 3.0.2 on etcd3 took the key back and rewound the new leader,
    // losing its acknowledged writes: docs/reliability.md); the other rounds hold under ttl.
    holdMs: (c) => {
      const underTtl = c.requestTimeoutMs + (c.short ? 2000 : 5000);
      return c.cluster.state().postgresHa && c.round % 2 === 0 ? Math.max(underTtl, (PATRONI_TIMING.ttl + 8) * 1000) : underTtl;
    },
    takes: ['db'],
    healNeeds: ['standby'],
    inject: async (ctx) => {
      const state = ctx.cluster.state();
      let name: string;
      let root: number;
      let again: () => number[];
      const patroni = patroniMembers(state).length > 0;
      if (!patroni) {
        const rec = ofRole(state, 'postgres-primary')[0]!;
        name = rec.name;
        root = rec.pid!;
        again = () => signalRecorded(rec, 'SIGCONT');
      } else {
        const leader = await patroniLeader(state);
        if (!leader) throw new Error('no Patroni member leads');
        const pm = postmasterPid(leader.dataDir ?? '');
        if (pm === undefined) throw new Error(`${leader.name}: no running postmaster in ${leader.dataDir}/postmaster.pid`);
        name = `${leader.name}'s postgres`;
        root = pm;
        again = () => {
          const now = postmasterPid(leader.dataDir ?? '');
          return now === undefined ? [] : signalTree(now, 'SIGCONT');
        };
      }
      // The postmaster and every child of it now (the same ones at the heal: a stopped postmaster forks none).
      const stopped = signalTree(root, 'SIGSTOP');
      for (let i = 0; i < 20 && !isStopped(root); i++) await sleep(50);
      if (!isStopped(root)) {
        signalPids(stopped, 'SIGCONT');
        throw new Error(`${name} (pid ${root}) is not stopped after SIGSTOP`);
      }
      return {
        target: `${name} (${stopped.length} processes)`,
        heal: async () => {
          signalPids(stopped, 'SIGCONT');
          again();
          if (patroni) {
            const leader = await waitPatroniWritable(ctx.cluster.state(), 120_000);
            ctx.say(`pg-primary-stop: ${leader.name} leads, HAProxy routes writes to it`);
            // A failover while frozen: the old leader steps down and rejoins (pg_rewind); until it
            // is the synchronous standby again, nothing could be promoted if the leader died next.
            await waitPatroniWhole(ctx.cluster.state(), 180_000);
          }
        },
      };
    },
  },
  // The Patroni leader's machine dies (`cluster kill`: Patroni and its PostgreSQL, SIGKILL) and the
  // standby is promoted. The leader is the member whose REST API answers 200 on /primary. The
  // heal waits until another member leads and HAProxy routes writes to it, then starts the old
  // leader (start-one), which rejoins as a replica (pg_rewind, or a new copy).
  {
    name: 'patroni-primary-kill',
    applicable: (state) => (patroniMembers(state).length >= 2 ? null : 'no Patroni members to fail over between (cluster start --ha)'),
    holdMs: (c) => (c.short ? 10000 : 15000),
    takes: ['db'],
    healNeeds: ['standby'],
    inject: async (ctx) => {
      const leader = await patroniLeader(ctx.cluster.state());
      if (!leader) throw new Error('no Patroni member answers 200 on /primary');
      await ctx.cluster.kill(leader.name);
      return {
        target: leader.name,
        heal: async () => {
          const now = await waitPatroniWritable(ctx.cluster.state(), 120_000, leader.name);
          ctx.say(`patroni-primary-kill: ${now.name} leads now; starting ${leader.name} again (it rejoins as a replica)`);
          if (!running(ctx.cluster.state().processes.find((p) => p.name === leader.name)!)) await ctx.cluster.startOne(leader.name);
          await waitPatroniWhole(ctx.cluster.state(), 180_000);
        },
      };
    },
  },
  // The leader's network namespace cut off (`cluster start --ha --netns`, `cluster partition|heal
  // <member>`): the leader runs on but nobody reaches it; the others elect a new leader, and the
  // old one must step down (no split brain: its writes would be lost).
  {
    name: 'pg-netns-partition',
    applicable: (state) => netnsPartitionApplies(state),
    holdMs: (c) => (c.short ? 15000 : 30000),
    takes: ['db'],
    healNeeds: ['standby'],
    inject: async (ctx) => {
      const leader = await patroniLeader(ctx.cluster.state());
      if (!leader) throw new Error('no Patroni member answers 200 on /primary');
      await ctx.cluster.cli('partition', leader.name);
      return {
        target: leader.name,
        heal: async () => {
          await ctx.cluster.cli('heal', leader.name);
          const now = await waitPatroniWritable(ctx.cluster.state(), 120_000);
          ctx.say(`pg-netns-partition: ${now.name} leads after the heal`);
        },
      };
    },
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
