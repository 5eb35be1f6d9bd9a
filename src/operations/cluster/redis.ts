// A redis-server of its own on a loopback port: for the local topology (`task-api cluster`) and
// for tests that stop or kill Redis (test/helpers/redis-server.ts). Nothing is persisted unless
// the caller asks for it in `args`.
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
