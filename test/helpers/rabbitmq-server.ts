// A RabbitMQ node of the test's own, for tests that stop the broker: started like the local
// cluster's (src/operations/cluster/rabbitmq.ts) in a temporary directory, on free ports. The
// machine's shared broker is never touched.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  amqpUrl,
  prepareRabbit,
  rabbitmqAvailable,
  rabbitPidFile,
  readRabbitPid,
  startRabbit,
  stopRabbit,
} from '../../src/operations/cluster/rabbitmq.js';
import { twoFreePorts } from '../../tools/local.js';

export { rabbitmqAvailable };

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
  /** The node's output (all its starts). */
  output(): string;
}

export async function ownRabbit(): Promise<OwnRabbit> {
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-rabbit-'));
  const [port, distPort] = await twoFreePorts();
  const nodename = `rabbit-test-${randomBytes(4).toString('hex')}@localhost`;
  const command = await prepareRabbit({ nodename, dir, port, distPort, path: process.env.PATH ?? '' });
  const pidFile = rabbitPidFile({ dir });
  const logFile = path.join(dir, 'output.log');
  let scriptPid: number | undefined;
  const stop = async (signal: NodeJS.Signals) => {
    await stopRabbit(pidFile, port, signal, scriptPid);
    scriptPid = undefined;
  };
  const self: OwnRabbit = {
    url: amqpUrl(port),
    nodename,
    output: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    async start() {
      scriptPid = (await startRabbit(command, port, pidFile, logFile)).scriptPid;
    },
    stop: () => stop('SIGTERM'),
    pid: () => readRabbitPid(pidFile),
    kill: () => stop('SIGKILL'),
    async destroy() {
      await self.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}
