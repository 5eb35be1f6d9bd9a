// A RabbitMQ node of the test's own (own node name, ports, data and log directories), for tests
// that stop the broker. The machine's shared broker is never touched. Runs the server script
// directly (/usr/lib/rabbitmq/bin): the /usr/sbin wrapper would switch to the rabbitmq user,
// who cannot write the test's temporary directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './process.js';

export const RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
export const rabbitmqAvailable = () => existsSync(RABBITMQ_SERVER);

export interface OwnRabbit {
  url: string;
  nodename: string;
  start(): Promise<void>;
  /** SIGTERM to the node (a clean broker stop); waits until it has exited. */
  stop(): Promise<void>;
  /** The node's OS process id (the Erlang VM, from its pid file); undefined when not started. */
  pid(): Promise<number | undefined>;
  /**
   * SIGKILL to the node (a crash: no clean shutdown, nothing flushed beyond what it had synced);
   * waits until it has exited and its port is closed. start() brings it back on the same data
   * directory, so durable queues and their persisted messages survive.
   */
  kill(): Promise<void>;
  /** Stops the node if running and removes its directory. */
  destroy(): Promise<void>;
  output(): string;
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

export async function ownRabbit(): Promise<OwnRabbit> {
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-rabbit-'));
  const port = await freePort();
  let distPort = await freePort();
  while (distPort === port) distPort = await freePort();
  const nodename = `rabbit-test-${randomBytes(4).toString('hex')}@localhost`;
  await mkdir(path.join(dir, 'mnesia'), { recursive: true });
  await mkdir(path.join(dir, 'log'), { recursive: true });
  await writeFile(path.join(dir, 'enabled_plugins'), '[].\n');
  await writeFile(path.join(dir, 'rabbitmq-env.conf'), '');
  const pidFile = path.join(dir, 'rabbit.pid');
  let proc: ChildProcess | undefined;
  let out = '';
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    RABBITMQ_NODENAME: nodename,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_CONF_ENV_FILE: path.join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq'),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(dir, 'advanced.config'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  const nodePid = async () => {
    try {
      return Number((await readFile(pidFile, 'utf8')).trim()) || undefined;
    } catch {
      return undefined;
    }
  };
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  /** Sends `signal` to the node (or, before it wrote its pid file, to the script) and waits until both are gone. */
  const signalNode = async (signal: NodeJS.Signals) => {
    const pid = await nodePid();
    const p = proc;
    if (pid !== undefined && alive(pid)) process.kill(pid, signal);
    else if (p && p.exitCode === null) p.kill(signal);
    for (let i = 0; i < 600; i++) {
      const nodeGone = pid === undefined || !alive(pid);
      const shellGone = !p || p.exitCode !== null || p.signalCode !== null;
      if (nodeGone && shellGone && !(await portOpen(port))) {
        out = '';
        // A killed node leaves its pid file behind: never signal that pid again (it may be reused).
        await rm(pidFile, { force: true });
        return;
      }
      await new Promise((r) => setTimeout(r, signal === 'SIGKILL' ? 20 : 100));
    }
    throw new Error(`rabbitmq-server did not exit within 60 s of ${signal}`);
  };
  const self: OwnRabbit = {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    nodename,
    output: () => out,
    async start() {
      const p = spawn(RABBITMQ_SERVER, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      proc = p;
      p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
      for (let i = 0; i < 600; i++) {
        if (p.exitCode !== null) throw new Error(`rabbitmq-server exited with ${p.exitCode}:\n${out.slice(-3000)}`);
        if (/Starting broker\.\.\. completed/.test(out) && (await portOpen(port))) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`rabbitmq-server did not start within 60 s:\n${out.slice(-3000)}`);
    },
    async stop() {
      await signalNode('SIGTERM');
    },
    pid: nodePid,
    async kill() {
      await signalNode('SIGKILL');
    },
    async destroy() {
      await self.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}
