// <dir>/state.json: every process `task-api cluster start` started, written as each one comes up,
// so that `stop` (or a test's cleanup) finds them by pid even when the start failed half way. It
// holds what restarts each one: its command line and environment (the signing key included, so
// the file is readable by its owner only).
import { existsSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { NetworkRecord } from './netns.js';
import type { GatewayOptions, SiteOptions } from './nginx.js';
import type { PgBouncerOptions } from './pgbouncer.js';
import type { CommandLine } from './processes.js';

export type { CommandLine };

export type Role =
  | 'postgres-primary'
  | 'postgres-replica'
  | 'etcd'
  | 'patroni'
  | 'haproxy'
  | 'pgbouncer'
  | 'redis'
  | 'redis-replica'
  | 'redis-sentinel'
  | 'rabbitmq'
  | 'api'
  | 'worker'
  | 'nginx'
  | 'prometheus';

export interface ProcessRecord {
  /** primary, replica-1, pgbouncer, redis, rabbitmq (or rabbitmq-1..3), api-1, worker, nginx, prometheus. */
  name: string;
  role: Role;
  /** The running process (for RabbitMQ the Erlang VM); null once stopped. */
  pid: number | null;
  port: number;
  /** An API instance of the split topology: the service (module) it runs (`serve --modules`). */
  service?: string;
  /** A PostgreSQL server of an extra shard of the tasks data (`cluster start --shards N`): its shard's name. */
  shard?: string;
  /** url, and metricsUrl for an API instance and the worker (whose url is its metrics URL: it serves no HTTP API). */
  urls: Record<string, string>;
  logFile: string;
  /** PostgreSQL's data directory (a Patroni member's too: its postmaster.pid names the server to kill with it). */
  dataDir?: string;
  /** A Patroni member's REST API port (`port` is its PostgreSQL's); HAProxy's statistics port. */
  controlPort?: number;
  /** Where it listens when not on loopback: a --netns member's namespace address. */
  host?: string;
  /** A --netns member cut off by `cluster partition` (until `cluster heal`). */
  partitioned?: boolean;
  /** How to start it again; PgBouncer is started through startPgBouncer, which writes its ini first. */
  start: ({ kind: 'command' } & CommandLine) | { kind: 'pgbouncer'; options: PgBouncerOptions };
  /** RabbitMQ writes the VM's pid here: the launched script is not the process to signal. */
  pidFile?: string;
  /** RabbitMQ: the Erlang node name (rabbitmqctl -n), unique on the machine. */
  nodename?: string;
  /** NGINX: its directory and what its site was rendered from, to render it again (roll). */
  site?: { dir: string; options: Omit<SiteOptions, 'accessLog'> | Omit<GatewayOptions, 'accessLog'> };
}

/** A shard of the tasks data: where the API reaches it, and where its primary server is. */
export interface ShardRecord {
  /** `main` (the cluster's primary), then s2, s3, ... */
  name: string;
  /** Its primary as the API instances reach it: through PgBouncer (SHARD_<NAME>_URL, or DATABASE_URL for main). */
  url: string;
  /** Its streaming replicas (SHARD_<NAME>_READ_URLS, or DATABASE_READ_URLS for main). */
  readUrls: string[];
  /** Its primary server itself, not through PgBouncer (migrations, operational commands). */
  primaryUrl: string;
}

export interface ClusterState {
  dir: string;
  createdAt: string;
  /** `cluster start --split`: a service per module behind the gateway. */
  split?: boolean;
  /** The split topology: each service's database (on the primary, and through PgBouncer). */
  databases?: Record<string, string>;
  /** NGINX: the one address clients use. */
  publicUrl: string;
  /** `cluster start --rabbit-cluster`: the RabbitMQ cluster's nodes (rabbitmq-1..3), whose URLs the instances' AMQP_URL lists. */
  rabbitCluster?: { nodes: string[] };
  /** `cluster start --redis-sentinel`: the master's name and the Sentinels (host:port) the instances ask. */
  redisSentinel?: { master: string; sentinels: string[] };
  /**
   * `cluster start --ha`: PostgreSQL under Patroni (members patroni-1 ... patroni-N, etcd, HAProxy
   * in front). `sync`: Patroni's synchronous_mode (`--sync`).
   */
  postgresHa?: { scope: string; sync: boolean; netns?: boolean };
  /**
   * `cluster start --ha --netns`: the bridge, namespaces and veth pairs the members run behind
   * (netns.ts), recorded before they are made; `cluster stop` deletes them.
   */
  network?: NetworkRecord;
  /** The shards of the tasks data, `main` first (src/operations/cluster/shards.ts); absent in a cluster started before them. */
  shards?: ShardRecord[];
  /** Started, or to be started, in this order; stopped in STOP_ORDER. */
  processes: ProcessRecord[];
}

export const stateFile = (dir: string) => path.join(dir, 'state.json');

export function readState(dir: string): ClusterState {
  const file = stateFile(dir);
  if (!existsSync(file)) throw new Error(`no cluster under ${dir} (${file} does not exist)`);
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

export function findProcess(state: ClusterState, name: string): ProcessRecord {
  const rec = state.processes.find((p) => p.name === name);
  if (!rec) throw new Error(`no process named ${name}; known: ${state.processes.map((p) => p.name).join(', ')}`);
  return rec;
}

/** The edge first (no new requests), then the instances (they drain), then what they use. */
// The Sentinels before the Redis servers: none starts a failover while they stop. HAProxy before
// the Patroni members (stop.ts stops the leader last), etcd after them: they need it to let go.
const STOP_ORDER: Role[] = [
  'nginx',
  'api',
  'worker',
  'prometheus',
  'pgbouncer',
  'haproxy',
  'patroni',
  'etcd',
  'postgres-replica',
  'postgres-primary',
  'redis-sentinel',
  'redis-replica',
  'redis',
  'rabbitmq',
];

/** The processes in the order they are stopped: one group per role. */
export function stopOrder(state: ClusterState): ProcessRecord[][] {
  return STOP_ORDER.map((role) => state.processes.filter((p) => p.role === role)).filter((g) => g.length > 0);
}

/** Writes the state atomically (a reader never sees half a file), one write at a time. */
export class StateWriter {
  private last: Promise<void> = Promise.resolve();
  constructor(readonly state: ClusterState) {}

  save(): Promise<void> {
    const text = `${JSON.stringify(this.state, null, 2)}\n`;
    const file = stateFile(this.state.dir);
    this.last = this.last.then(async () => {
      await writeFile(`${file}.tmp`, text, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    });
    return this.last;
  }

  /** Adds (or replaces, by name) a record and saves. */
  record(rec: ProcessRecord): Promise<void> {
    const i = this.state.processes.findIndex((p) => p.name === rec.name);
    if (i >= 0) this.state.processes[i] = rec;
    else this.state.processes.push(rec);
    return this.save();
  }
}
