// `task-api cluster status`: one JSON object with every address of the topology, each process's
// pid, and whether it runs.
import { memberState, restUrl, type MemberState } from './patroni.js';
import path from 'node:path';
import { running } from './roles.js';
import { shardsOf } from './shards.js';
import type { ClusterState, ProcessRecord, Role } from './state.js';

interface Brief {
  name: string;
  url: string;
  pid: number | null;
  alive: boolean;
  logFile: string;
}

const brief = (rec: ProcessRecord): Brief => ({ name: rec.name, url: rec.urls.url ?? '', pid: rec.pid, alive: running(rec), logFile: rec.logFile });

/** Each Patroni member's role as its REST API tells it now (`cluster start --ha`); empty otherwise. */
export async function memberStates(state: ClusterState): Promise<Map<string, MemberState>> {
  const members = state.processes.filter((p) => p.role === 'patroni');
  const states = await Promise.all(members.map(async (rec) => [rec.name, running(rec) && rec.controlPort !== undefined ? await memberState(rec.urls.restUrl ?? restUrl(rec.controlPort)) : { role: 'unknown' as const }] as const));
  return new Map(states);
}

export function clusterStatus(state: ClusterState, members: Map<string, MemberState> = new Map()) {
  // primary and replicas: the main shard's; the extra shards' servers are listed under processes.
  const of = (role: Role) => state.processes.filter((p) => p.role === role && p.shard === undefined);
  const one = (role: Role) => {
    const rec = of(role)[0];
    return rec ? brief(rec) : null;
  };
  const processes = state.processes.map((rec) => ({
    ...brief(rec),
    role: rec.role,
    ...(rec.service ? { service: rec.service } : {}),
    ...(rec.shard ? { shard: rec.shard } : {}),
    ...(rec.nodename ? { nodename: rec.nodename } : {}),
    ...(rec.host ? { host: rec.host } : {}),
    ...(rec.partitioned !== undefined ? { partitioned: rec.partitioned } : {}),
    port: rec.port,
  }));
  const rabbitNode = (rec: ProcessRecord) => ({ ...brief(rec), nodename: rec.nodename ?? '', home: path.dirname(rec.pidFile ?? '') });
  return {
    dir: state.dir,
    publicUrl: state.publicUrl,
    allAlive: processes.length > 0 && processes.every((p) => p.alive),
    nginx: one('nginx'),
    topology: state.split ? 'split' : 'monolith',
    // split: each service's database (by name, on the primary and through PgBouncer).
    ...(state.databases ? { databases: state.databases } : {}),
    // The shards of the tasks data, main first: url as the API reaches it (PgBouncer), readUrls
    // (the replicas), primaryUrl (the server itself).
    shards: shardsOf(state),
    // service: the module the instance serves (split), or all of them (the monolith's "api").
    instances: of('api').map((rec) => ({ ...brief(rec), service: rec.service ?? 'api', metricsUrl: rec.urls.metricsUrl ?? '' })),
    // --worker: the separate `task-api worker` (url: its metrics).
    ...(of('worker').length > 0 ? { worker: one('worker') } : {}),
    primary: one('postgres-primary'),
    replicas: of('postgres-replica').map(brief),
    pgbouncer: one('pgbouncer'),
    redis: one('redis'),
    // --redis-sentinel: the replica and the Sentinels (which of the servers is master now: ask a Sentinel).
    ...(state.redisSentinel
      ? {
          redisSentinel: {
            master: state.redisSentinel.master,
            // REDIS_SENTINELS as the instances got it.
            addresses: state.redisSentinel.sentinels,
            replicas: of('redis-replica').map(brief),
            sentinels: of('redis-sentinel').map(brief),
          },
        }
      : {}),
    // --ha: who leads now (the names stay as started: after a failover patroni-1 is a replica).
    ...(state.postgresHa
      ? {
          postgresHa: {
            ...state.postgresHa,
            ...(state.network ? { network: { bridge: state.network.bridge, hostAddress: state.network.hostAddress, subnet: state.network.subnet } } : {}),
            etcd: one('etcd'),
            haproxy: (() => {
              const rec = of('haproxy')[0];
              return rec ? { ...brief(rec), primaryUrl: rec.urls.url ?? '', replicaUrl: rec.urls.replicaUrl ?? '', statsUrl: rec.urls.statsUrl ?? '' } : null;
            })(),
            // --netns: each member's namespace and address, and whether it is partitioned now.
            members: of('patroni').map((rec) => {
              const net = state.network?.members.find((m) => m.member === rec.name);
              return {
                ...brief(rec),
                restUrl: rec.urls.restUrl ?? '',
                ...(members.get(rec.name) ?? { role: 'unknown' }),
                ...(net ? { namespace: net.namespace, address: net.address, partitioned: rec.partitioned === true } : {}),
              };
            }),
          },
        }
      : {}),
    // The first (or only) RabbitMQ node; --rabbit-cluster: every node, with its Erlang node name
    // and the HOME whose cookie rabbitmqctl needs (HOME=<home> rabbitmqctl -n <nodename> ...).
    rabbitmq: one('rabbitmq'),
    ...(state.rabbitCluster ? { rabbitCluster: { nodes: of('rabbitmq').map(rabbitNode) } } : {}),
    prometheus: one('prometheus'),
    processes,
  };
}
