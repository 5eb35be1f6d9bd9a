// `task-api cluster start`: the production topology on one machine, from the installed binaries,
// on loopback ports. PostgreSQL (primary and streaming replicas, PgBouncer in front), Redis and
// RabbitMQ come up side by side; then the migrations, once; then the API instances; then NGINX
// in front of them and Prometheus scraping them. With --split, a service per module instead
// (`serve --modules <m>`, auth first, then the gateway, then the others with AUTH_JWKS_URL through
// it). With --shards N, N-1 more PostgreSQL servers (each with as many replicas as the primary)
// hold shards of the tasks data (shards.ts). With --rabbit-cluster, three RabbitMQ nodes form one
// cluster and every instance's AMQP_URL lists them all, starting at a different node per instance
// (src/events/amqp-nodes.ts). Each process is recorded in <dir>/state.json before
// it is waited for, and a start that fails stops everything it had started.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { chmod, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ClusterConfig } from '../../cluster-config.js';
import { apiCommand, apiUrl, CLI, ROOT, workerCommand, type Topology } from './api.js';
import { requireBinaries, type Binaries } from './binaries.js';
import { HA_PGBOUNCER_SETTINGS, haState, planHa, startHa, type HaPlan } from './ha.js';
import { GATEWAY_SERVICES, nginxCommand, writeGatewayConfig, writeNginxConfig, type GatewayService, type NginxLayout } from './nginx.js';
import { initPrimary, initReplica, nodeLaunchSpec, pgUrl, psql, type PgNode } from './postgres.js';
import { LOOPBACK, PortAllocator, waitUntil } from './processes.js';
import { preparePrometheus } from './prometheus.js';
import { amqpUrl, prepareRabbit, rabbitPidFile, runningNodes } from './rabbitmq.js';
import { redisCommand, redisConfCommand, redisUrl, SENTINEL_MASTER, writeRedisServerConf, writeSentinelConf } from './redis.js';
import { running, startProcess } from './roles.js';
import { extraShardNames, pgbouncerDatabase, shardRecords, shardVariables } from './shards.js';
import { readState, stateFile, StateWriter, type ClusterState, type CommandLine, type ProcessRecord, type Role } from './state.js';
import { stopAll } from './stop.js';

export interface StartOptions {
  dir: string;
  instances: number;
  replicas: number;
  /** Ports are handed out counting up from here; kernel-chosen when undefined. */
  basePort?: number;
  /**
   * A service per module (auth, users, tasks, notifications: `serve --modules <m>`), `instances`
   * of each, behind the gateway (deploy/nginx/gateway.conf.template) instead of the monolith.
   */
  split?: boolean;
  /**
   * Shards of the tasks data: main (the primary) and N-1 more PostgreSQL servers, s2 ... sN, each
   * with `replicas` replicas of its own; default 1 (main alone, no TASK_SHARDS).
   */
  shards?: number;
  /** Redis master, one replica and three Sentinels; the instances reach the master through the Sentinels. */
  redisSentinel?: boolean;
  /**
   * PostgreSQL under Patroni: members patroni-1 (the first leader) ... patroni-(1 + replicas), etcd,
   * HAProxy in front (ha.ts); PgBouncer reaches the leader through HAProxy. Not with shards.
   */
  ha?: boolean;
  /** With ha: Patroni's synchronous_mode (a commit waits until a replica has it). */
  sync?: boolean;
  /** Three RabbitMQ nodes (rabbitmq-1..3) clustered; the instances' AMQP_URL lists all three. */
  rabbitCluster?: boolean;
  /** With ha: each Patroni member in a network namespace of its own (netns.ts), so it can be partitioned. */
  netns?: boolean;
  /**
   * A separate `task-api worker` process named `worker` (the outbox relay and every consumer, no
   * HTTP), with an instance's environment: it competes with the instances' consumers. Not with split.
   */
  worker?: boolean;
}

/** The nodes of --rabbit-cluster: quorum queues of three members, a majority of two. */
export const RABBIT_CLUSTER_NODES = 3;

/** One API instance to start: the monolith's api-N, or the split topology's <service>-N. */
interface PlannedInstance {
  name: string;
  service?: GatewayService;
  port: number;
  metricsPort: number;
}

/** The database the API uses, on the primary (PgBouncer serves it under the same name). */
export const DATABASE = 'task_api';

/**
 * The split topology's databases, by service: each service owns its data. Auth and users share
 * the identity database (the accounts auth signs in against are the users module's, read and
 * written synchronously at sign-up and login; the signing keys sit beside them); tasks and
 * notifications each have their own, and learn of accounts only from the account events.
 */
export const SERVICE_DATABASES: Record<GatewayService, string> = {
  auth: 'task_api_identity',
  users: 'task_api_identity',
  tasks: 'task_api_tasks',
  notifications: 'task_api_notifications',
};

type Say = (line: string) => void;

/**
 * A directory for a new cluster: made if missing; a stopped cluster's files are discarded; a
 * running cluster, or files that are not a cluster's, stop the start.
 */
async function prepareDir(dir: string, say: Say): Promise<void> {
  if (existsSync(stateFile(dir))) {
    const alive = readState(dir).processes.filter(running);
    if (alive.length > 0) throw new Error(`a cluster runs under ${dir} (${alive.map((p) => p.name).join(', ')}): run cluster stop --dir ${dir} first`);
    say(`discarding the stopped cluster under ${dir}`);
    for (const entry of readdirSync(dir)) await rm(path.join(dir, entry), { recursive: true, force: true });
  } else if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new Error(`${dir} is not empty and holds no cluster (no state.json): choose another --dir`);
  }
  mkdirSync(dir, { recursive: true });
  // PostgreSQL (as postgres) and NGINX's workers (as nobody) must reach their files under it.
  await chmod(dir, 0o755);
}

function commandRecord(name: string, role: Role, port: number, url: string, logFile: string, cmd: CommandLine): ProcessRecord {
  return { name, role, pid: null, port, urls: { url }, logFile, start: { kind: 'command', ...cmd } };
}

/** `task-api migrate` against one server itself (not through PgBouncer); output appended to <dir>/migrate.log. */
async function migrate(dir: string, databaseUrl: string, inherited: Record<string, string>): Promise<void> {
  const env: Record<string, string> = { ...inherited, NODE_ENV: 'production', LOG_LEVEL: 'warn', DATABASE_URL: databaseUrl };
  // One database at a time: no replicas, no other shards.
  delete env.DATABASE_READ_URLS;
  delete env.TASK_SHARDS;
  const logFile = path.join(dir, 'migrate.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [CLI, 'migrate'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`task-api migrate exited with ${code}: see ${logFile}`);
}

/** Ed25519 signing key shared by every instance (unless JWT_PRIVATE_KEY was given). */
async function signingKey(dir: string): Promise<string> {
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await writeFile(path.join(dir, 'jwt-private.pem'), pem, { mode: 0o600 });
  return pem;
}

/** Each service's instances, host:port each, for the gateway. */
function gatewayServices(planned: PlannedInstance[]): Record<GatewayService, string[]> {
  const of = (s: GatewayService) => planned.filter((p) => p.service === s).map((p) => `${LOOPBACK}:${p.port}`);
  return { auth: of('auth'), users: of('users'), tasks: of('tasks'), notifications: of('notifications') };
}

/**
 * The whole API's OpenAPI document (every module's routes, as a monolith serves it), which the
 * gateway serves: each service's own document describes only its module. Returns its path.
 */
async function writeOpenApi(dir: string): Promise<string> {
  const { openApiDocument, serialiseDocument } = await import('../openapi.js');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'openapi.json');
  await writeFile(file, serialiseDocument(await openApiDocument()), { mode: 0o644 });
  return file;
}

/** Throws the first failure of parallel steps, after all of them have finished. */
async function allOrFirstError(steps: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(steps)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

export async function startCluster(o: StartOptions, config: ClusterConfig, say: Say): Promise<ClusterState> {
  const dir = path.resolve(o.dir);
  const pathEnv = config.inherited.PATH ?? '';
  if (o.ha && (o.shards ?? 1) > 1) throw new Error('--ha runs the main PostgreSQL under Patroni; it does not take --shards');
  if (o.sync && !o.ha) throw new Error('--sync is a setting of --ha (Patroni synchronous_mode)');
  if (o.netns && !o.ha) throw new Error('--netns is a setting of --ha (the Patroni members in network namespaces)');
  if (o.worker && o.split) throw new Error('--worker runs every module against the monolith\'s database; it does not take --split');
  const bins: Binaries = requireBinaries(pathEnv, { ha: o.ha === true });
  await prepareDir(dir, say);
  const ports = new PortAllocator(o.basePort);
  const take = () => ports.take();
  const nginxPort = await take();
  const planned: PlannedInstance[] = [];
  for (const service of o.split ? GATEWAY_SERVICES : [undefined]) {
    for (let i = 0; i < o.instances; i++) planned.push({ name: `${service ?? 'api'}-${i + 1}`, service, port: await take(), metricsPort: 0 });
  }
  for (const p of planned) p.metricsPort = await take();
  const workerMetricsPort = o.worker ? await take() : 0;
  // --ha: "the primary" is HAProxy's port to the leader, and the servers reads may go to are every
  // member (the instances read only from one in recovery: src/infra/db/replicas.ts), not HAProxy's
  // replica port, whose connections may each reach another replica (docs/decisions.md).
  const ha: HaPlan | undefined = o.ha ? await planHa(dir, o.replicas, take, o.netns === true) : undefined;
  const primaryPort = ha ? ha.haproxy.primaryPort : await take();
  const replicaPorts: number[] = [];
  // Each replica's address (loopback but for --netns members).
  const replicaHosts: string[] = [];
  if (ha) {
    if (ha.members.length > 1) {
      replicaPorts.push(...ha.members.map((m) => m.pgPort));
      replicaHosts.push(...ha.members.map((m) => m.host));
    }
  } else for (let i = 0; i < o.replicas; i++) replicaPorts.push(await take());
  const [pgbouncerPort, redisPort, amqpPort, distPort, prometheusPort] = [await take(), await take(), await take(), await take(), await take()];
  // --rabbit-cluster: the first node on amqpPort and distPort, the others on ports of their own.
  const rabbitPorts = [{ amqp: amqpPort, dist: distPort }];
  if (o.rabbitCluster) for (let i = 1; i < RABBIT_CLUSTER_NODES; i++) rabbitPorts.push({ amqp: await take(), dist: await take() });
  const amqpUrls = rabbitPorts.map((p) => amqpUrl(p.amqp));
  const redisReplicaPort = o.redisSentinel ? await take() : 0;
  const sentinelPorts: number[] = [];
  if (o.redisSentinel) for (let i = 0; i < 3; i++) sentinelPorts.push(await take());
  const extraShards: { name: string; primaryPort: number; replicaPorts: number[] }[] = [];
  for (const name of extraShardNames(o.shards ?? 1)) {
    const shard = { name, primaryPort: await take(), replicaPorts: [] as number[] };
    for (let i = 0; i < o.replicas; i++) shard.replicaPorts.push(await take());
    extraShards.push(shard);
  }

  const dbNames = o.split ? [...new Set(Object.values(SERVICE_DATABASES))] : [DATABASE];
  // The database the tasks data lives in: on the primary (main), and of the same name on every other shard.
  const tasksDb = o.split ? SERVICE_DATABASES.tasks : DATABASE;
  const shards = shardRecords({ database: tasksDb, pgbouncerPort, main: { primaryPort, replicaPorts, ...(replicaHosts.length > 0 ? { replicaHosts } : {}) }, extra: extraShards });
  const state: ClusterState = {
    dir,
    createdAt: new Date().toISOString(),
    ...(o.split ? { split: true, databases: { ...SERVICE_DATABASES } } : {}),
    publicUrl: `http://${LOOPBACK}:${nginxPort}`,
    shards,
    ...(o.redisSentinel ? { redisSentinel: { master: SENTINEL_MASTER, sentinels: sentinelPorts.map((p) => `${LOOPBACK}:${p}`) } } : {}),
    ...(ha ? { postgresHa: haState(o.sync === true, o.netns === true) } : {}),
    // Recorded before startHa makes them: a start that fails is cleaned up by stopAll.
    ...(ha?.network ? { network: ha.network } : {}),
    ...(o.rabbitCluster ? { rabbitCluster: { nodes: rabbitPorts.map((_, i) => `rabbitmq-${i + 1}`) } } : {}),
    processes: [],
  };
  const writer = new StateWriter(state);
  await writer.save();
  const bring = async (rec: ProcessRecord) => {
    await writer.record(rec);
    await startProcess(rec, async (pid) => {
      rec.pid = pid;
      await writer.save();
    });
    say(`${rec.name}: ${rec.urls.url} (pid ${rec.pid})`);
  };
  const log = (name: string) => path.join(dir, `${name}.log`);

  const pgNode = (name: string, port: number): PgNode => ({ name, port, dataDir: path.join(dir, name), logFile: log(name) });
  const pgRecord = (node: PgNode, role: Role, shard?: string): ProcessRecord => {
    const { logFile, ...spec } = nodeLaunchSpec(node);
    const rec = commandRecord(node.name, role, node.port, pgUrl(node.port, shard ? tasksDb : dbNames[0]), logFile, { ...spec, env: { PATH: pathEnv } });
    return { ...rec, ...(shard ? { shard } : {}), dataDir: node.dataDir };
  };

  const selfMade = async () => {
    const primary = pgNode('primary', primaryPort);
    await initPrimary(primary);
    await bring(pgRecord(primary, 'postgres-primary'));
    for (const db of dbNames) psql(primaryPort, `CREATE DATABASE ${db}`);
    await allOrFirstError(
      replicaPorts.map(async (port, i) => {
        const replica = pgNode(`replica-${i + 1}`, port);
        // A slot per replica: the primary keeps the WAL a stopped replica still needs.
        await initReplica(primary, replica, { slot: `replica_${i + 1}` });
        await bring(pgRecord(replica, 'postgres-replica'));
      }),
    );
  };
  const databases = async () => {
    if (ha) await startHa({ dir, plan: ha, sync: o.sync === true, bins: bins.ha!, pathEnv, databases: dbNames, bring, log });
    else await selfMade();
    // Each extra shard's primary under <database>_<shard>: the instances reach every shard through PgBouncer.
    const servers = extraShards.map((s) => ({ name: pgbouncerDatabase(tasksDb, s.name), port: s.primaryPort, dbname: tasksDb }));
    const options = {
      dir: path.join(dir, 'pgbouncer'),
      port: pgbouncerPort,
      primaryPort,
      logFile: log('pgbouncer'),
      databases: dbNames,
      ...(servers.length > 0 ? { servers } : {}),
      ...(ha ? { settings: HA_PGBOUNCER_SETTINGS } : {}),
    };
    await bring({
      name: 'pgbouncer',
      role: 'pgbouncer',
      pid: null,
      port: pgbouncerPort,
      urls: { url: pgUrl(pgbouncerPort, dbNames[0]) },
      logFile: options.logFile,
      start: { kind: 'pgbouncer', options },
    });
  };
  // The extra shards' servers, made the way the primary and its replicas are: one shard at a time
  // beside the main one, so that a start with many shards does not load every core at once.
  const shardServers = async () => {
    for (const s of extraShards) {
      const primary = pgNode(`pg-${s.name}`, s.primaryPort);
      await initPrimary(primary);
      await bring(pgRecord(primary, 'postgres-primary', s.name));
      psql(s.primaryPort, `CREATE DATABASE ${tasksDb}`);
      await allOrFirstError(
        s.replicaPorts.map(async (port, i) => {
          const replica = pgNode(`pg-${s.name}-replica-${i + 1}`, port);
          await initReplica(primary, replica, { slot: `replica_${i + 1}` });
          await bring(pgRecord(replica, 'postgres-replica', s.name));
        }),
      );
    }
  };
  const redisAlone = () => bring(commandRecord('redis', 'redis', redisPort, redisUrl(redisPort), log('redis'), redisCommand({ port: redisPort, path: pathEnv, binary: bins.redis, args: ['--appendonly', 'no', '--dir', dir] })));
  // --redis-sentinel: the master, then its replica, then the Sentinels watching the master. Each
  // from a configuration file under <dir>/redis that the server may rewrite.
  const redisWithSentinels = async () => {
    const redisDir = path.join(dir, 'redis');
    const server = async (name: string, role: Role, port: number, replicaOf?: number) => {
      const conf = path.join(redisDir, `${name}.conf`);
      await writeRedisServerConf(conf, { port, dir: path.join(redisDir, name), ...(replicaOf !== undefined ? { replicaOf } : {}) });
      await bring(commandRecord(name, role, port, redisUrl(port), log(name), redisConfCommand({ conf, path: pathEnv, binary: bins.redis })));
    };
    await server('redis', 'redis', redisPort);
    await server('redis-replica-1', 'redis-replica', redisReplicaPort, redisPort);
    await allOrFirstError(
      sentinelPorts.map(async (port, i) => {
        const name = `sentinel-${i + 1}`;
        const conf = path.join(redisDir, `${name}.conf`);
        await writeSentinelConf(conf, { port, dir: path.join(redisDir, name), masterPort: redisPort });
        await bring(commandRecord(name, 'redis-sentinel', port, redisUrl(port), log(name), redisConfCommand({ conf, path: pathEnv, binary: bins.redis, sentinel: true })));
      }),
    );
  };
  const redis = o.redisSentinel ? redisWithSentinels : redisAlone;
  const rabbitAlone = async () => {
    const node = { nodename: `task-api-${randomBytes(4).toString('hex')}@localhost`, dir: path.join(dir, 'rabbitmq'), port: amqpPort, distPort, path: pathEnv };
    const cmd = await prepareRabbit(node);
    await bring({ ...commandRecord('rabbitmq', 'rabbitmq', amqpPort, amqpUrl(amqpPort), log('rabbitmq'), cmd), pidFile: rabbitPidFile(node), nodename: node.nodename });
  };
  // --rabbit-cluster: the first node alone (it finds no peer and, after its discovery retries,
  // starts the cluster), then the others side by side (each joins a node that runs), then a check
  // that the first sees every node running: quorum queues are declared (by the instances, later)
  // with a member on each node of the cluster as it is then.
  const rabbitCluster = async () => {
    const suffix = randomBytes(4).toString('hex');
    const nodes = rabbitPorts.map((p, i) => ({
      name: `rabbitmq-${i + 1}`,
      nodename: `task-api-${suffix}-${i + 1}@localhost`,
      dir: path.join(dir, `rabbitmq-${i + 1}`),
      port: p.amqp,
      distPort: p.dist,
      path: pathEnv,
    }));
    const membership = { cookie: randomBytes(24).toString('hex'), nodes: nodes.map((n) => n.nodename) };
    const records: ProcessRecord[] = [];
    for (const node of nodes) {
      const cmd = await prepareRabbit(node, membership);
      records.push({ ...commandRecord(node.name, 'rabbitmq', node.port, amqpUrl(node.port), log(node.name), cmd), pidFile: rabbitPidFile(node), nodename: node.nodename });
    }
    await bring(records[0]!);
    await allOrFirstError(records.slice(1).map((rec) => bring(rec)));
    const first = { nodename: nodes[0]!.nodename, home: nodes[0]!.dir, path: pathEnv };
    let seen: string[] = [];
    await waitUntil(
      `every RabbitMQ node running in one cluster (${membership.nodes.join(', ')})`,
      async () => {
        seen = await runningNodes(first).catch(() => seen);
        return membership.nodes.every((n) => seen.includes(n));
      },
      60_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; ${nodes[0]!.nodename} sees ${seen.join(', ') || 'none'} running`);
    });
    say(`rabbitmq: one cluster of ${nodes.length} nodes (${membership.nodes.join(', ')})`);
  };
  const rabbit = o.rabbitCluster ? rabbitCluster : rabbitAlone;

  try {
    await allOrFirstError([databases(), shardServers(), redis(), rabbit()]);
    // Every database gets the whole schema (one migration history); a service writes only its
    // own tables in its own database (test/system/cluster-split.test.ts checks the others stay empty).
    for (const db of dbNames) await migrate(dir, pgUrl(primaryPort, db), config.inherited);
    // And so does each extra shard's database, on its primary.
    for (const s of shards.slice(1)) await migrate(dir, s.primaryUrl, config.inherited);
    say(`migrations applied (${[...dbNames, ...shards.slice(1).map((s) => `${tasksDb} on pg-${s.name}`)].join(', ')})`);
    const onDatabase = (t: Topology, db: string): Topology => ({ ...t, databaseUrl: pgUrl(pgbouncerPort, db), readUrls: replicaPorts.map((p, i) => pgUrl(p, db, replicaHosts[i])) });
    const topology: Topology = {
      databaseUrl: pgUrl(pgbouncerPort, DATABASE),
      readUrls: replicaPorts.map((p, i) => pgUrl(p, DATABASE, replicaHosts[i])),
      redisUrl: redisUrl(redisPort),
      ...(state.redisSentinel ? { redisSentinel: state.redisSentinel } : {}),
      amqpUrl: amqpUrls.join(','),
      trustProxy: LOOPBACK,
      jwtPrivateKey: config.inherited.JWT_PRIVATE_KEY ?? (await signingKey(dir)),
      // Through PgBouncer, as DATABASE_URL is; for the instances that run the tasks module.
      shardEnv: shardVariables(shards, 'url'),
    };
    // Each instance lists the broker's nodes from another one: the connections spread over the cluster.
    const rotated = (t: Topology, n: number): Topology => ({ ...t, amqpUrl: [...amqpUrls.slice(n % amqpUrls.length), ...amqpUrls.slice(0, n % amqpUrls.length)].join(',') });
    const instances = (list: PlannedInstance[], authJwksUrl?: string) =>
      allOrFirstError(
        list.map(({ name, service, port, metricsPort }) => {
          const on = rotated(service ? onDatabase(topology, SERVICE_DATABASES[service]) : topology, planned.findIndex((p) => p.name === name));
          const cmd = apiCommand({ name, port, metricsPort, dataDir: path.join(dir, name), service, authJwksUrl }, on, config.inherited);
          const rec = commandRecord(name, 'api', port, apiUrl(port), log(name), cmd);
          if (service) rec.service = service;
          rec.urls.metricsUrl = `http://${LOOPBACK}:${metricsPort}/metrics`;
          return bring(rec);
        }),
      );
    const listen = { listen: `${LOOPBACK}:${nginxPort}`, serverName: 'localhost', edge: config.edge };
    const bringEdge = async (nginx: NginxLayout, options: NonNullable<ProcessRecord['site']>['options']) => {
      const edge = commandRecord('nginx', 'nginx', nginxPort, state.publicUrl, log('nginx'), nginxCommand(nginx, bins.nginx, pathEnv));
      await bring({ ...edge, site: { dir: nginx.dir, options } });
    };
    if (o.split) {
      // The auth service first, then the gateway in front of every service, then the services
      // that verify tokens with the auth service's keys, fetched through the gateway (cached:
      // no request to auth per token, and tokens keep verifying while auth is down).
      await instances(planned.filter((p) => p.service === 'auth'));
      const site = { ...listen, services: gatewayServices(planned), openapiFile: await writeOpenApi(path.join(dir, 'nginx')) };
      await bringEdge(await writeGatewayConfig(path.join(dir, 'nginx'), site), site);
      await instances(
        planned.filter((p) => p.service !== 'auth'),
        `${state.publicUrl}/.well-known/jwks.json`,
      );
    } else {
      await instances(planned);
      const site = { ...listen, upstreams: planned.map((p) => `${LOOPBACK}:${p.port}`) };
      await bringEdge(await writeNginxConfig(path.join(dir, 'nginx'), site), site);
    }
    if (o.worker) {
      const metricsUrl = `http://${LOOPBACK}:${workerMetricsPort}/metrics`;
      const cmd = workerCommand({ name: 'worker', port: 0, metricsPort: workerMetricsPort, dataDir: path.join(dir, 'worker') }, rotated(topology, planned.length), config.inherited);
      const rec = commandRecord('worker', 'worker', workerMetricsPort, metricsUrl, log('worker'), cmd);
      rec.urls.metricsUrl = metricsUrl;
      await bring(rec);
    }
    const targets = [...planned.map((p) => ({ name: p.name, port: p.metricsPort })), ...(o.worker ? [{ name: 'worker', port: workerMetricsPort }] : [])];
    const prometheus = await preparePrometheus(path.join(dir, 'prometheus'), prometheusPort, targets, bins.prometheus, pathEnv);
    await bring(commandRecord('prometheus', 'prometheus', prometheusPort, `http://${LOOPBACK}:${prometheusPort}`, log('prometheus'), prometheus));
  } catch (err) {
    say('start failed: stopping what it started');
    await stopAll(writer, say);
    throw err;
  }
  return state;
}
