// Private PostgreSQL, Redis and RabbitMQ servers for a test run on a machine where the packages
// are installed but nothing answers on the default addresses: each on a free loopback port, with
// its data in a temporary directory, stopped by its pid when the run ends.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { postgresBin, serverUser } from '../../src/operations/cluster/postgres.js';
import { freePort } from '../helpers/process.js';
import { ownRabbit, rabbitmqAvailable } from '../helpers/rabbitmq-server.js';
import { ownRedis } from '../helpers/redis-server.js';

export interface PrivateServer {
  url: string;
  stop(): Promise<void>;
}

export const canStartPostgres = (): boolean => postgresBin() !== undefined;

export async function startPostgres(): Promise<PrivateServer> {
  const bin = postgresBin();
  if (!bin) throw new Error('no PostgreSQL server installed (/usr/lib/postgresql/*/bin/postgres)');
  const user = serverUser();
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-test-pg-'));
  const data = path.join(dir, 'data');
  if (user) chownSync(dir, user.uid, user.gid);
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
    encoding: 'utf8',
    ...user,
  });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const args = ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300'];
  // Nothing here has to survive a crash: the run's databases are dropped with the directory.
  args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const proc = spawn(path.join(bin, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], ...user });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-5000)));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  for (let i = 0; i < 300 && !(await accepts(bin, port)); i++) {
    if (proc.exitCode !== null) throw new Error(`postgres exited with ${proc.exitCode}: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, stop: () => stopProcess(proc, 'SIGINT').then(() => rm(dir, { recursive: true, force: true })) };
}

const accepts = (bin: string, port: number) =>
  new Promise<boolean>((resolve) =>
    spawn(path.join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' }).on('exit', (code) => resolve(code === 0)),
  );

/** Signals the process by its pid (SIGINT: PostgreSQL's fast shutdown) and waits until it exited. */
async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  await exited;
}

export const canStartRedis = (): boolean => spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

export async function startRedis(): Promise<PrivateServer> {
  const redis = await ownRedis();
  await redis.start();
  return { url: redis.url, stop: () => redis.kill() };
}

export const canStartRabbitmq = rabbitmqAvailable;

export async function startRabbitmq(): Promise<PrivateServer> {
  const rabbit = await ownRabbit();
  await rabbit.start();
  return { url: rabbit.url, stop: () => rabbit.destroy() };
}
