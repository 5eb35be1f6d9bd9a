// `task-api cluster status`: one JSON object with every address of the topology, each process's
// pid, and whether it runs.
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

export function clusterStatus(state: ClusterState) {
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
    // The first (or only) RabbitMQ node; --rabbit-cluster: every node, with its Erlang node name
    // and the HOME whose cookie rabbitmqctl needs (HOME=<home> rabbitmqctl -n <nodename> ...).
    rabbitmq: one('rabbitmq'),
    ...(state.rabbitCluster ? { rabbitCluster: { nodes: of('rabbitmq').map(rabbitNode) } } : {}),
    prometheus: one('prometheus'),
    processes,
  };
}
