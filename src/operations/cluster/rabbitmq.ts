// A RabbitMQ node of its own (own node name, ports, data and log directories): for the local
// topology (`task-api cluster`) and for tests that stop the broker (test/helpers/rabbitmq-server.ts).
// The machine's shared broker is never touched. Runs the server script directly
// (/usr/lib/rabbitmq/bin): the /usr/sbin wrapper would switch to the rabbitmq user, who cannot
// write a temporary directory of root's. The script starts the Erlang VM as a child and waits for
// it; the VM writes its pid to the pid file, and that pid is the one to signal.
// `cluster start --rabbit-cluster` runs three such nodes as one RabbitMQ cluster: the same Erlang
// cookie in each node's HOME, and classic-config peer discovery naming all three, so that a
// blank node joins the nodes that run (clusterPeers), and a restarted one rejoins from its data.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive, launch, LOOPBACK, sleep, tcpOpen, type CommandLine } from './processes.js';

export const RABBITMQ_BIN = '/usr/lib/rabbitmq/bin';
export const RABBITMQ_SERVER = path.join(RABBITMQ_BIN, 'rabbitmq-server');
export const rabbitmqAvailable = () => existsSync(RABBITMQ_SERVER);

export interface RabbitNode {
  /** e.g. rabbit-test-1a2b@localhost: unique on the machine (they share one epmd). */
  nodename: string;
  /** Its mnesia, log, config and pid files live here. */
  dir: string;
  port: number;
  /** Erlang distribution port. */
  distPort: number;
  /** PATH for the script (erl). */
  path: string;
}

export const amqpUrl = (port: number) => `amqp://guest:guest@${LOOPBACK}:${port}`;
export const rabbitPidFile = (node: Pick<RabbitNode, 'dir'>) => path.join(node.dir, 'rabbit.pid');

/** A node of a cluster: the cookie every node shares, and every node's name (itself included). */
export interface RabbitClusterMembership {
  cookie: string;
  nodes: string[];
}

/**
 * rabbitmq.conf of a cluster's node: classic-config peer discovery naming every node. A blank
 * node joins the first of them that runs (the first node, which finds none, starts the cluster
 * after its retries); a node with data rejoins the cluster it belongs to.
 */
export function clusterConf(nodes: string[]): string {
  return [
    'cluster_formation.peer_discovery_backend = classic_config',
    ...nodes.map((n, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${n}`),
    '',
  ].join('\n');
}

/**
 * Writes the node's config and plugin files (empty for a node of its own; a cluster's node gets
 * its peers and, in its HOME, the shared Erlang cookie); returns the command that runs it.
 */
export async function prepareRabbit(node: RabbitNode, cluster?: RabbitClusterMembership): Promise<CommandLine> {
  const { dir } = node;
  await mkdir(path.join(dir, 'mnesia'), { recursive: true });
  await mkdir(path.join(dir, 'log'), { recursive: true });
  await writeFile(path.join(dir, 'enabled_plugins'), '[].\n');
  await writeFile(path.join(dir, 'rabbitmq-env.conf'), '');
  if (cluster) {
    await writeFile(path.join(dir, 'rabbitmq.conf'), clusterConf(cluster.nodes));
    // Node-to-node traffic on loopback only (the distribution listens on every interface otherwise).
    await writeFile(path.join(dir, 'advanced.config'), '[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].\n');
    // Erlang refuses a cookie file others can read.
    await writeFile(path.join(dir, '.erlang.cookie'), cluster.cookie, { mode: 0o400 });
  }
  return {
    command: RABBITMQ_SERVER,
    args: [],
    env: {
      PATH: node.path,
      HOME: dir,
      RABBITMQ_NODENAME: node.nodename,
      RABBITMQ_NODE_IP_ADDRESS: LOOPBACK,
      RABBITMQ_NODE_PORT: String(node.port),
      RABBITMQ_DIST_PORT: String(node.distPort),
      RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(dir, 'log'),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
      RABBITMQ_PID_FILE: rabbitPidFile(node),
      RABBITMQ_CONF_ENV_FILE: path.join(dir, 'rabbitmq-env.conf'),
      RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq'),
      RABBITMQ_ADVANCED_CONFIG_FILE: path.join(dir, 'advanced.config'),
      ERL_EPMD_ADDRESS: LOOPBACK,
    },
  };
}

/** The VM's pid from its pid file, when there is one. */
export async function readRabbitPid(pidFile: string): Promise<number | undefined> {
  try {
    return Number((await readFile(pidFile, 'utf8')).trim()) || undefined;
  } catch {
    return undefined;
  }
}

async function readFrom(file: string, offset: number): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await handle.read(buf, 0, buf.length, offset);
    return buf.toString();
  } finally {
    await handle.close();
  }
}

/**
 * Starts the node detached (output appended to logFile) and waits until the broker has booted
 * and listens; returns the VM's pid and the script's. Throws with the output when it exits first.
 */
export async function startRabbit(
  cmd: CommandLine,
  port: number,
  pidFile: string,
  logFile: string,
  timeoutMs = 60_000,
): Promise<{ pid: number; scriptPid: number }> {
  // Only this start's output counts: the log file may hold an earlier run's "completed".
  const offset = existsSync(logFile) ? (await stat(logFile)).size : 0;
  await rm(pidFile, { force: true });
  const scriptPid = launch({ ...cmd, logFile });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = await readFrom(logFile, offset).catch(() => '');
    const pid = await readRabbitPid(pidFile);
    if (pid !== undefined && /Starting broker\.\.\. completed/.test(out) && (await tcpOpen(port))) return { pid, scriptPid };
    const failure = !isAlive(scriptPid) ? 'exited' : Date.now() > deadline ? `did not start within ${timeoutMs} ms` : undefined;
    if (failure) {
      // Nothing of a failed start stays behind.
      await stopRabbit(pidFile, port, 'SIGKILL', scriptPid).catch(() => undefined);
      throw new Error(`rabbitmq-server ${failure}:\n${out.slice(-3000)}`);
    }
    await sleep(100);
  }
}

/**
 * Sends `signal` to the VM (or, before it wrote its pid file, to the script) and waits until
 * both are gone and the port is closed. The pid file is removed: a killed VM leaves it behind,
 * and its pid must never be signalled again (it may belong to another process by then).
 */
export async function stopRabbit(pidFile: string, port: number, signal: NodeJS.Signals, scriptPid?: number, timeoutMs = 60_000): Promise<void> {
  const pid = await readRabbitPid(pidFile);
  const target = pid !== undefined && isAlive(pid) ? pid : scriptPid !== undefined && isAlive(scriptPid) ? scriptPid : undefined;
  if (target !== undefined) process.kill(target, signal);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vmGone = pid === undefined || !isAlive(pid);
    const scriptGone = scriptPid === undefined || !isAlive(scriptPid);
    if (vmGone && scriptGone && !(await tcpOpen(port))) break;
    if (Date.now() > deadline) throw new Error(`rabbitmq-server did not exit within ${timeoutMs} ms of ${signal}`);
    await sleep(signal === 'SIGKILL' ? 20 : 100);
  }
  await rm(pidFile, { force: true });
}

/** A node to run the CLI tools against: its name and the HOME holding its cookie. */
export interface RabbitCtlTarget {
  nodename: string;
  home: string;
  /** PATH for the tools (erl). */
  path: string;
}

/**
 * Runs one of RabbitMQ's CLI tools (rabbitmqctl, rabbitmq-queues, rabbitmq-diagnostics) against
 * the node, as the node's owner (the scripts under RABBITMQ_BIN, not the /usr/sbin wrappers that
 * switch to the rabbitmq user and its cookie). Resolves with stdout; rejects with the output.
 */
export function rabbitCtl(target: RabbitCtlTarget, tool: 'rabbitmqctl' | 'rabbitmq-queues' | 'rabbitmq-diagnostics', args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      path.join(RABBITMQ_BIN, tool),
      ['-n', target.nodename, ...args],
      { env: { PATH: target.path, HOME: target.home, LANG: 'C.UTF-8' }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => (err ? reject(new Error(`${tool} ${args.join(' ')} on ${target.nodename}: ${err.message}\n${stderr}${stdout}`)) : resolve(stdout)),
    );
  });
}

/** The cluster's running nodes as the node sees them (rabbitmqctl cluster_status). */
export async function runningNodes(target: RabbitCtlTarget): Promise<string[]> {
  const status = JSON.parse(await rabbitCtl(target, 'rabbitmqctl', ['cluster_status', '--formatter', 'json'])) as { running_nodes?: string[] };
  return status.running_nodes ?? [];
}
