// A RabbitMQ node of its own (own node name, ports, data and log directories): for the local
// topology (`task-api cluster`) and for tests that stop the broker (test/helpers/rabbitmq-server.ts).
// The machine's shared broker is never touched. Runs the server script directly
// (/usr/lib/rabbitmq/bin): the /usr/sbin wrapper would switch to the rabbitmq user, who cannot
// write a temporary directory of root's. The script starts the Erlang VM as a child and waits for
// it; the VM writes its pid to the pid file, and that pid is the one to signal.
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive, launch, LOOPBACK, sleep, tcpOpen, type CommandLine } from './processes.js';

export const RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
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

/** Writes the node's (empty) config and plugin files; returns the command that runs it. */
export async function prepareRabbit(node: RabbitNode): Promise<CommandLine> {
  const { dir } = node;
  await mkdir(path.join(dir, 'mnesia'), { recursive: true });
  await mkdir(path.join(dir, 'log'), { recursive: true });
  await writeFile(path.join(dir, 'enabled_plugins'), '[].\n');
  await writeFile(path.join(dir, 'rabbitmq-env.conf'), '');
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
