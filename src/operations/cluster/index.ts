// `task-api cluster <command>`: the production topology on one machine (see README, Scaling out).
// Progress goes to stderr; what a command answers (status JSON, a rendered configuration) to stdout.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ClusterConfig } from '../../cluster-config.js';
import { controlOne, partitionOne, roll } from './control.js';
import { ROOT } from './api.js';
import { GATEWAY_SERVICES, GATEWAY_TEMPLATE, NGINX_TEMPLATE, renderGateway, renderSite, type GatewayService } from './nginx.js';
import { startCluster } from './start.js';
import { clusterStatus, memberStates } from './status.js';
import { readState, StateWriter } from './state.js';
import { stopAll } from './stop.js';

export { shardEnvOf } from './shards.js';

export const CLUSTER_USAGE = `usage: task-api cluster <command>
  start [--instances N] [--replicas R] [--base-port P] [--split] [--shards S] [--redis-sentinel]
        [--ha [--sync] [--netns]] [--rabbit-cluster] [--worker] [--dir D]
                            PostgreSQL primary + R replicas (1), PgBouncer, Redis, RabbitMQ,
                            N API instances (3), NGINX and Prometheus on loopback ports;
                            --split: a service per module (auth, users, tasks, notifications),
                            N instances each (2), behind the gateway (gateway.conf.template);
                            --shards: the tasks data on S shards (1): the primary (main) and
                            S-1 more PostgreSQL servers (pg-s2, ...) with R replicas each;
                            --redis-sentinel: Redis master, a replica (redis-replica-1) and
                            three Sentinels (sentinel-1..3); the instances follow the master;
                            --ha: PostgreSQL under Patroni instead: etcd, members patroni-1
                            (first leader) .. patroni-(1+R), HAProxy to the leader, PgBouncer
                            behind it; --sync: Patroni synchronous_mode (no acknowledged
                            commit lost when the leader dies); --netns: each member in a
                            network namespace of its own (10.231.X.0/24 behind a bridge;
                            root), so that it can be partitioned;
                            --rabbit-cluster: three RabbitMQ nodes (rabbitmq-1..3) as one
                            cluster (quorum queues on all three); each instance's AMQP_URL
                            lists every node;
                            --worker: a separate task-api worker process (worker: the
                            outbox relay and every consumer, no HTTP) beside the instances,
                            with their environment; not with --split
  status [--dir D]          one JSON object: every URL, pid and whether it runs
  stop [--dir D]            stop everything start started
  restart|kill|start-one <name> [--dir D]
                            one recorded process (api-2, replica-1, pgbouncer, nginx, worker,
                            rabbitmq-2, ...); kill is SIGKILL (RabbitMQ: the Erlang VM;
                            patroni-N: the member's PostgreSQL with it)
  partition|heal <member> [--dir D]
                            --netns only: cut the member (patroni-N) off the network (it
                            keeps running, reaches nothing, nothing reaches it) / reconnect it
  roll [--dir D]            restart the API instances one after another
  nginx-config --upstream HOST:PORT ... [--listen 80] [--server-name NAME] [--access-log PATH]
                            print deploy/nginx/task-api.conf.template rendered for production
  gateway-config --service auth=HOST:PORT[,HOST:PORT] (and users=, tasks=, notifications=)
                 [--openapi PATH] [--listen 80] [--server-name NAME] [--access-log PATH]
                            print deploy/nginx/gateway.conf.template rendered for production
D defaults to ./.cluster; EDGE_RATE_LIMIT and EDGE_RATE_BURST set NGINX's per-client limit.`;

export class UsageError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
}

const KNOWN_FLAGS = new Set(['instances', 'replicas', 'base-port', 'dir', 'upstream', 'listen', 'server-name', 'access-log', 'service', 'openapi', 'split', 'shards', 'redis-sentinel', 'ha', 'sync', 'netns', 'rabbit-cluster', 'worker']);
/** Flags that take no value. */
const SWITCHES = new Set(['split', 'redis-sentinel', 'ha', 'sync', 'netns', 'rabbit-cluster', 'worker']);

function parse(args: string[]): Parsed {
  const out: Parsed = { positional: [], flags: new Map() };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) {
      out.positional.push(arg);
      continue;
    }
    const name = m[1]!;
    if (!KNOWN_FLAGS.has(name)) throw new UsageError(`unknown option --${name}`);
    if (SWITCHES.has(name)) {
      if (m[2] !== undefined) throw new UsageError(`--${name} takes no value`);
      out.flags.set(name, ['true']);
      continue;
    }
    const value = m[2] ?? args[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    out.flags.set(name, [...(out.flags.get(name) ?? []), value]);
  }
  return out;
}

function intFlag(p: Parsed, name: string, min: number, max: number, dflt: number | undefined): number | undefined {
  const raw = p.flags.get(name)?.at(-1);
  if (raw === undefined) return dflt;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`);
  return Number(raw);
}

const dirOf = (p: Parsed) => path.resolve(p.flags.get('dir')?.at(-1) ?? '.cluster');
const say = (line: string) => console.error(`cluster: ${line}`);
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

/** Runs the command; returns the exit code (2 for a usage error). */
export async function clusterCommand(args: string[], config: ClusterConfig): Promise<number> {
  const [command, ...rest] = args;
  let p: Parsed;
  try {
    p = parse(rest);
  } catch (err) {
    console.error(`${(err as Error).message}\n${CLUSTER_USAGE}`);
    return 2;
  }
  try {
    return await run(command, p, config);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${CLUSTER_USAGE}`);
      return 2;
    }
    // What went wrong, and which log to read: the stack of the runner would say nothing more.
    say(err instanceof Error ? err.message : String(err));
    return 1;
  }
}

async function run(given: string | undefined, p: Parsed, config: ClusterConfig): Promise<number> {
  const command = given ?? '';
  switch (command) {
    case 'start': {
      const split = p.flags.has('split');
      const options = {
        dir: dirOf(p),
        split,
        instances: intFlag(p, 'instances', 1, 32, split ? 2 : 3)!,
        replicas: intFlag(p, 'replicas', 0, 8, 1)!,
        basePort: intFlag(p, 'base-port', 1, 65535, undefined),
        shards: intFlag(p, 'shards', 1, 16, 1)!,
        redisSentinel: p.flags.has('redis-sentinel'),
        ha: p.flags.has('ha'),
        sync: p.flags.has('sync'),
        rabbitCluster: p.flags.has('rabbit-cluster'),
        netns: p.flags.has('netns'),
        worker: p.flags.has('worker'),
      };
      if (options.sync && !options.ha) throw new UsageError('--sync is a setting of --ha');
      if (options.netns && !options.ha) throw new UsageError('--netns is a setting of --ha');
      if (options.ha && options.shards > 1) throw new UsageError('--ha does not take --shards');
      if (options.worker && split) throw new UsageError('--worker does not take --split');
      const state = await startCluster(options, config, say);
      print(clusterStatus(state, await memberStates(state)));
      return 0;
    }
    case 'status': {
      const state = readState(dirOf(p));
      print(clusterStatus(state, await memberStates(state)));
      return 0;
    }
    case 'stop':
      await stopAll(new StateWriter(readState(dirOf(p))), say);
      return 0;
    case 'restart':
    case 'kill':
    case 'start-one': {
      const name = p.positional[0];
      if (!name) throw new UsageError(`${command} needs the name of a process`);
      await controlOne(dirOf(p), command, name, say);
      return 0;
    }
    case 'partition':
    case 'heal': {
      const name = p.positional[0];
      if (!name) throw new UsageError(`${command} needs the name of a member (patroni-N)`);
      await partitionOne(dirOf(p), name, command === 'partition', say);
      return 0;
    }
    case 'roll':
      await roll(dirOf(p), say);
      return 0;
    case 'nginx-config': {
      const upstreams = (p.flags.get('upstream') ?? []).flatMap((u) => u.split(',')).filter(Boolean);
      if (upstreams.length === 0) throw new UsageError('nginx-config needs at least one --upstream HOST:PORT');
      const site = renderSite(readFileSync(NGINX_TEMPLATE, 'utf8'), {
        listen: p.flags.get('listen')?.at(-1) ?? '80',
        serverName: p.flags.get('server-name')?.at(-1) ?? '_',
        upstreams,
        accessLog: p.flags.get('access-log')?.at(-1) ?? '/var/log/nginx/task-api.access.log',
        edge: config.edge,
      });
      process.stdout.write(site);
      return 0;
    }
    case 'gateway-config': {
      const services = Object.fromEntries(GATEWAY_SERVICES.map((s) => [s, [] as string[]])) as Record<GatewayService, string[]>;
      for (const given of p.flags.get('service') ?? []) {
        const m = /^([a-z]+)=(.+)$/.exec(given);
        const list = m ? services[m[1] as GatewayService] : undefined;
        if (!m || !list) throw new UsageError(`--service ${given}: expected one of ${GATEWAY_SERVICES.join(', ')}=HOST:PORT[,HOST:PORT]`);
        list.push(...m[2]!.split(',').filter(Boolean));
      }
      const missing = GATEWAY_SERVICES.filter((s) => services[s].length === 0);
      if (missing.length > 0) throw new UsageError(`gateway-config needs --service ${missing.join('=..., --service ')}=HOST:PORT`);
      const site = renderGateway(readFileSync(GATEWAY_TEMPLATE, 'utf8'), {
        listen: p.flags.get('listen')?.at(-1) ?? '80',
        serverName: p.flags.get('server-name')?.at(-1) ?? '_',
        services,
        openapiFile: path.resolve(p.flags.get('openapi')?.at(-1) ?? path.join(ROOT, 'docs', 'openapi.json')),
        accessLog: p.flags.get('access-log')?.at(-1) ?? '/var/log/nginx/task-api.access.log',
        edge: config.edge,
      });
      process.stdout.write(site);
      return 0;
    }
    default:
      throw new UsageError(command ? `unknown cluster command "${command}"` : 'a cluster command is needed');
  }
}
