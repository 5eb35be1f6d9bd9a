// A redis-server of the test's own, on a free loopback port, for tests that stop Redis. The
// machine's shared Redis is never touched.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './process.js';

export interface OwnRedis {
  port: number;
  url: string;
  start(): Promise<void>;
  /** SIGKILL, as a crash: nothing is flushed that the server was not told to flush. */
  kill(): Promise<void>;
}

/** `extraArgs` e.g. ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir] to survive restarts. */
export async function ownRedis(extraArgs: string[] = ['--appendonly', 'no']): Promise<OwnRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const ping = () =>
    new Promise<boolean>((resolve) => spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping'], { stdio: 'ignore' }).on('exit', (c) => resolve(c === 0)));
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...extraArgs], { stdio: 'ignore' });
      for (let i = 0; i < 100; i++) {
        if (await ping()) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('redis-server did not start');
    },
    async kill() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    },
  };
}
