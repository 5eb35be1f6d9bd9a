// A redis-server of the test's own, on a free loopback port, for tests that stop Redis. The
// machine's shared Redis is never touched. Started like the local cluster's (src/operations/cluster/redis.ts).
import { redisCommand, redisUrl, startRedis } from '../../src/operations/cluster/redis.js';
import { stopPid } from '../../src/operations/cluster/processes.js';
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
  let pid: number | undefined;
  return {
    port,
    url: redisUrl(port),
    async start() {
      pid = await startRedis(redisCommand({ port, args: extraArgs, path: process.env.PATH ?? '' }), port, '/dev/null');
    },
    async kill() {
      if (pid === undefined) return;
      await stopPid(pid, 'SIGKILL');
      pid = undefined;
    },
  };
}
