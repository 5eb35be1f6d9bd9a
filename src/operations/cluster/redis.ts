// A redis-server of its own on a loopback port: for the local topology (`task-api cluster`) and
// for tests that stop or kill Redis (test/helpers/redis-server.ts). Nothing is persisted unless
// the caller asks for it in `args`.
import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { launch, LOOPBACK, waitUntil, type CommandLine } from './processes.js';

export interface RedisOptions {
  port: number;
  /** Extra arguments, e.g. ['--appendonly', 'yes', '--dir', dir] to survive restarts. */
  args?: string[];
  /** The server's PATH. */
  path: string;
  /** redis-server's path; found on PATH when not given. */
  binary?: string;
}

export const redisUrl = (port: number) => `redis://${LOOPBACK}:${port}`;

export function redisCommand(o: RedisOptions): CommandLine {
  return {
    command: o.binary ?? 'redis-server',
    args: ['--port', String(o.port), '--bind', LOOPBACK, '--save', '', '--daemonize', 'no', ...(o.args ?? ['--appendonly', 'no'])],
    env: { PATH: o.path },
  };
}

/** True when the server on the port answers PING with PONG (RESP over a plain socket). */
export function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, LOOPBACK);
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d: Buffer) => {
      reply += d.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.once('error', () => done(false));
  });
}

/** Starts redis-server detached (output to logFile) and waits until it answers; returns its pid. */
export async function startRedis(cmd: CommandLine, port: number, logFile: string, timeoutMs = 15_000): Promise<number> {
  const pid = launch({ ...cmd, logFile });
  await waitUntil(`Redis on port ${port}`, () => redisPing(port), timeoutMs, pid);
  return pid;
}

/** The master's name the Sentinels monitor (REDIS_SENTINEL_MASTER's default). */
export const SENTINEL_MASTER = 'task-api';

/**
 * `cluster start --redis-sentinel`: a server started from a configuration file of its own, which
 * it must be able to rewrite (Sentinel turns a restarted old master into a replica with
 * REPLICAOF + CONFIG REWRITE, and a promoted replica drops its replicaof line the same way).
 */
export async function writeRedisServerConf(file: string, o: { port: number; dir: string; replicaOf?: number }): Promise<void> {
  const lines = [
    `port ${o.port}`,
    `bind ${LOOPBACK}`,
    'daemonize no',
    'save ""',
    'appendonly no',
    `dir ${o.dir}`,
    ...(o.replicaOf !== undefined ? [`replicaof ${LOOPBACK} ${o.replicaOf}`] : []),
  ];
  mkdirSync(o.dir, { recursive: true });
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o644 });
}

/**
 * A Sentinel's configuration: the master monitored with quorum 2 (of 3), down after 1 s without
 * an answer, a failover retried after 5 s. Sentinel rewrites the file as it learns the topology.
 */
export async function writeSentinelConf(file: string, o: { port: number; dir: string; masterPort: number; master?: string }): Promise<void> {
  const name = o.master ?? SENTINEL_MASTER;
  const lines = [
    `port ${o.port}`,
    `bind ${LOOPBACK}`,
    'daemonize no',
    `dir ${o.dir}`,
    `sentinel monitor ${name} ${LOOPBACK} ${o.masterPort} 2`,
    `sentinel down-after-milliseconds ${name} 1000`,
    `sentinel failover-timeout ${name} 5000`,
    `sentinel parallel-syncs ${name} 1`,
  ];
  mkdirSync(o.dir, { recursive: true });
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o644 });
}

/** redis-server from a configuration file (a Sentinel with `--sentinel`). */
export function redisConfCommand(o: { conf: string; path: string; binary?: string; sentinel?: boolean }): CommandLine {
  return { command: o.binary ?? 'redis-server', args: [o.conf, ...(o.sentinel ? ['--sentinel'] : [])], env: { PATH: o.path } };
}
