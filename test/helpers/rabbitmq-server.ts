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
      const pid = await nodePid();
      const p = proc;
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGTERM');
      else if (p && p.exitCode === null) p.kill('SIGTERM');
      for (let i = 0; i < 600; i++) {
        const nodeGone = pid === undefined || !alive(pid);
        const shellGone = !p || p.exitCode !== null || p.signalCode !== null;
        if (nodeGone && shellGone && !(await portOpen(port))) {
          out = '';
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('rabbitmq-server did not stop within 60 s');
    },
    async destroy() {
      await self.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}
