// Starting and stopping one recorded process, whatever it is: how each role is told it is ready
// and how it is stopped (API instances SIGTERM so they drain, NGINX QUIT, PostgreSQL fast). A
// recorded pid is signalled only while it still runs the recorded program: a pid left in
// state.json may belong to another process by now.
import { readFileSync } from 'node:fs';
import { apiHealthy } from './api.js';
import { startPgBouncer, stopPgBouncer } from './pgbouncer.js';
import { etcdHealthy, haproxyRoutesPrimary, memberHealthy, restUrl, stopMember } from './patroni.js';
import { accepts, stopNode } from './postgres.js';
import { httpOk, isAlive, launch, stopPid, tcpOpen, waitUntil } from './processes.js';
import { prometheusReady } from './prometheus.js';
import { startRabbit, stopRabbit } from './rabbitmq.js';
import { redisPing } from './redis.js';
import type { ProcessRecord, Role } from './state.js';

/** A word of the command line each role's process runs: told apart from a stranger with its pid. */
const PROGRAM: Record<Role, string> = {
  'postgres-primary': 'postgres',
  'postgres-replica': 'postgres',
  etcd: 'etcd',
  patroni: 'patroni',
  haproxy: 'haproxy',
  pgbouncer: 'pgbouncer',
  redis: 'redis-server',
  'redis-replica': 'redis-server',
  'redis-sentinel': 'redis-server',
  rabbitmq: 'beam',
  api: 'cli.js',
  worker: 'cli.js',
  nginx: 'nginx',
  prometheus: 'prometheus',
};

/** When each role answers: its port accepts (and for some, a readiness request succeeds). */
const READY: Record<Exclude<Role, 'pgbouncer' | 'rabbitmq'>, (rec: ProcessRecord) => Promise<boolean> | boolean> = {
  'postgres-primary': (rec) => accepts(rec.port),
  'postgres-replica': (rec) => accepts(rec.port),
  etcd: (rec) => etcdHealthy(rec.port),
  // Its PostgreSQL runs (as leader or replica; a rejoining old leader after pg_rewind).
  patroni: (rec) => memberHealthy(rec.urls.restUrl ?? restUrl(rec.controlPort!)),
  // It sends its primary port to the one leader.
  haproxy: (rec) => haproxyRoutesPrimary(rec.controlPort!, rec.port),
  redis: (rec) => redisPing(rec.port),
  'redis-replica': (rec) => redisPing(rec.port),
  'redis-sentinel': (rec) => redisPing(rec.port),
  api: (rec) => apiHealthy(rec.port),
  // `task-api worker` serves no HTTP API: its metrics port answers once its consumers and relay started.
  worker: (rec) => httpOk(rec.urls.metricsUrl ?? rec.urls.url!),
  nginx: (rec) => tcpOpen(rec.port),
  prometheus: (rec) => prometheusReady(rec.port),
};

const START_TIMEOUT_MS = 60_000;
/** A Patroni member may first copy the leader (base backup) or rewind its data directory. */
const MEMBER_START_TIMEOUT_MS = 180_000;

/** Whether the record's pid runs, and runs the recorded program (Linux /proc; elsewhere the pid alone). */
export function running(rec: ProcessRecord): boolean {
  if (rec.pid === null || !isAlive(rec.pid)) return false;
  try {
    return readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').includes(PROGRAM[rec.role]);
  } catch {
    return true;
  }
}

/**
 * Starts the recorded process and waits until it is ready. `launched` is told the pid as soon as
 * there is one, so that it is recorded before the wait (a start that fails is still stopped).
 */
export async function startProcess(rec: ProcessRecord, launched: (pid: number) => Promise<void>): Promise<number> {
  const { start } = rec;
  if (start.kind === 'pgbouncer') {
    const { pid } = await startPgBouncer(start.options);
    await launched(pid);
    return pid;
  }
  const { kind: _kind, ...command } = start;
  if (rec.role === 'rabbitmq') {
    // The script's pid is not the broker's: the VM's comes from its pid file once it booted.
    const { pid } = await startRabbit(command, rec.port, rec.pidFile!, rec.logFile);
    await launched(pid);
    return pid;
  }
  const pid = launch({ ...command, logFile: rec.logFile });
  await launched(pid);
  const ready = READY[rec.role as keyof typeof READY];
  await waitUntil(`${rec.name} on port ${rec.port} (its log: ${rec.logFile})`, () => ready(rec), rec.role === 'patroni' ? MEMBER_START_TIMEOUT_MS : START_TIMEOUT_MS, pid);
  return pid;
}

/**
 * Stops the recorded process by its pid and waits until it has exited (and, for servers, its port
 * is released). 'graceful' is each role's clean stop; 'kill' is SIGKILL, as a crash.
 */
export async function stopProcess(rec: ProcessRecord, how: 'graceful' | 'kill'): Promise<void> {
  const pid = rec.pid;
  if (pid === null) return;
  if (!running(rec)) {
    rec.pid = null;
    return;
  }
  const kill = how === 'kill';
  switch (rec.role) {
    case 'postgres-primary':
    case 'postgres-replica':
      await stopNode({ name: rec.name, port: rec.port, dataDir: rec.dataDir ?? '', logFile: rec.logFile, pid }, kill ? 'kill' : 'fast');
      break;
    case 'patroni':
      // 'kill' takes its PostgreSQL with it: the machine dying, not Patroni alone.
      await stopMember(pid, rec.dataDir ?? '', rec.port, kill ? 'kill' : 'graceful', rec.host);
      break;
    case 'pgbouncer':
      await stopPgBouncer(pid, kill ? 'kill' : 'graceful');
      break;
    case 'rabbitmq':
      await stopRabbit(rec.pidFile!, rec.port, kill ? 'SIGKILL' : 'SIGTERM');
      break;
    case 'nginx':
      if (kill) {
        // Workers outlive a killed master: the whole process group goes (launch made the master its leader).
        process.kill(-pid, 'SIGKILL');
        await waitUntil(`nginx (pid ${pid}) exited`, async () => !isAlive(pid) && !(await tcpOpen(rec.port)), 30_000);
      } else {
        // QUIT: finish the requests in flight, then exit.
        await stopPid(pid, 'SIGQUIT', 30_000);
      }
      break;
    case 'api':
    case 'worker':
      // SIGTERM: /health turns 503, SHUTDOWN_DRAIN_MS passes, in-flight requests finish, pools close
      // (the worker: stops claiming, finishes the batch in flight, closes its channel and pools).
      await stopPid(pid, kill ? 'SIGKILL' : 'SIGTERM', 60_000);
      break;
    case 'redis':
    case 'redis-replica':
    case 'redis-sentinel':
    case 'prometheus':
    case 'etcd':
    case 'haproxy':
      await stopPid(pid, kill ? 'SIGKILL' : 'SIGTERM', 30_000);
      break;
  }
  rec.pid = null;
}
