// The chaos run's own cluster, driven only through the built CLI (`node dist/cli.js cluster ...
// --dir D`) and state.json: started with the topology's flags, each process acted on by name
// (kill, start-one) or signalled by the pid state.json records, and stopped at the end by pid
// (`cluster stop`, then SIGKILL to any recorded pid still running). The CLI commands run one at a
// time: each one rewrites state.json from what it read, and two at once could lose a pid.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { CLUSTER_USAGE } from '../src/operations/cluster/index.js';
import { haproxyRoutesPrimary, memberIsLeader, memberState, postmasterPid, restUrl } from '../src/operations/cluster/patroni.js';
import { running, stopProcess } from '../src/operations/cluster/roles.js';
import { readState, type ClusterState, type ProcessRecord } from '../src/operations/cluster/state.js';
import { CLI, ROOT } from './paths.js';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI to its end (bounded by timeoutMs: then SIGKILL to its pid). */
export function runCli(args: string[], env: Record<string, string>, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`task-api ${args.join(' ')}: no exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The start flags of each topology. A feature's flags are used only when this build's `cluster`
 * usage names them, so `--ha --sync` (Patroni) and `--rabbit-cluster` join the full topology by
 * themselves once merged.
 */
export const TOPOLOGY_FEATURES: { name: string; flags: string[]; topologies: Topology[] }[] = [
  { name: 'base', flags: ['--instances', '3', '--replicas', '1'], topologies: ['basic', 'full'] },
  { name: 'redis-sentinel', flags: ['--redis-sentinel'], topologies: ['full'] },
  { name: 'ha', flags: ['--ha', '--sync'], topologies: ['full'] },
  { name: 'rabbit-cluster', flags: ['--rabbit-cluster'], topologies: ['full'] },
  // A separate `task-api worker` (the notifications consumer the worker-kill row crashes).
  { name: 'worker', flags: ['--worker'], topologies: ['full'] },
  // After --ha: each Patroni member in a network namespace of its own, for pg-netns-partition (root).
  { name: 'netns', flags: ['--netns'], topologies: ['full'] },
];

export type Topology = 'basic' | 'full';

/** Whether every `--flag` of the list appears in the CLI's usage (values such as '3' are not flags). */
export const supported = (flags: string[], usage = CLUSTER_USAGE) =>
  flags.filter((f) => f.startsWith('--')).every((f) => new RegExp(`${f.replace(/[-]/g, '\\-')}(?![a-z-])`).test(usage));

export function startFlags(topology: Topology, usage = CLUSTER_USAGE): { flags: string[]; skipped: string[] } {
  const flags: string[] = [];
  const skipped: string[] = [];
  for (const f of TOPOLOGY_FEATURES.filter((t) => t.topologies.includes(topology))) {
    if (supported(f.flags, usage)) flags.push(...f.flags);
    else skipped.push(`${f.name} (${f.flags.join(' ')}: not in this build's cluster start)`);
  }
  return { flags, skipped };
}

type Say = (line: string) => void;

export class ChaosCluster {
  private queue: Promise<unknown> = Promise.resolve();
  constructor(
    readonly dir: string,
    private readonly env: Record<string, string>,
    private readonly say: Say,
  ) {}

  /** A CLI command, after the ones before it have finished (see the file's comment). */
  cli(...args: string[]): Promise<RunResult> {
    const next = this.queue.then(async () => {
      // A Patroni member's start-one may wait up to 180 s (a base backup or pg_rewind): more than that.
      const res = await runCli(['cluster', ...args, '--dir', this.dir], this.env, 300_000);
      if (res.code !== 0) throw new Error(`cluster ${args.join(' ')} exited with ${res.code}: ${res.stderr.trim().split('\n').slice(-5).join(' | ')}`);
      return res;
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  async start(flags: string[]): Promise<void> {
    this.say(`cluster start ${flags.join(' ')} --dir ${this.dir}`);
    await this.cli('start', ...flags);
  }

  state(): ClusterState {
    return readState(this.dir);
  }

  kill(name: string) {
    return this.cli('kill', name);
  }

  startOne(name: string) {
    return this.cli('start-one', name);
  }

  /**
   * Starts every recorded process that does not run: after the faults were healed, one that is
   * down crashed by itself (or its heal failed). Returns each with the last error its log shows.
   */
  async healAll(): Promise<{ name: string; lastError: string }[]> {
    const started: { name: string; lastError: string }[] = [];
    for (const rec of this.state().processes) {
      if (rec.pid !== null && running(rec)) continue;
      const lastError = lastErrorLine(rec.logFile);
      this.say(`${rec.name} does not run after the faults (its log: ${lastError}): starting it`);
      await this.startOne(rec.name);
      started.push({ name: rec.name, lastError });
    }
    return started;
  }

  /**
   * SIGCONT to every PostgreSQL server and its children (a Patroni member's postmaster, found by
   * its data directory's postmaster.pid, and its children): none is left frozen, whatever ended the run.
   */
  resumeAll(): void {
    try {
      for (const rec of this.state().processes) {
        if (rec.pid !== null && rec.role.startsWith('postgres') && running(rec)) signalRecorded(rec, 'SIGCONT');
        const postmaster = rec.role === 'patroni' && rec.dataDir ? postmasterPid(rec.dataDir) : undefined;
        if (postmaster !== undefined) signalTree(postmaster, 'SIGCONT');
      }
    } catch (err) {
      this.say(`resuming PostgreSQL: ${(err as Error).message}`);
    }
  }

  /** cluster stop, then SIGKILL to any recorded pid still running: nothing of the run is left. */
  async stop(): Promise<void> {
    this.resumeAll();
    try {
      await this.cli('stop');
    } catch (err) {
      this.say(`cluster stop: ${(err as Error).message}`);
    }
    for (const rec of readState(this.dir).processes) {
      if (!running(rec)) continue;
      const pid = rec.pid!;
      this.say(`${rec.name} (pid ${pid}) still runs after cluster stop: SIGKILL`);
      try {
        await stopProcess(rec, 'kill');
      } catch (err) {
        // stopProcess waits for the role's own signs (RabbitMQ's pid file, a port): the recorded pid goes all the same.
        this.say(`${rec.name}: ${(err as Error).message}`);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
  }
}

/** The last line of a log that reads like an error (a crash's stack ends with the error, then the Node version). */
export function lastErrorLine(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-200);
    const hit = lines.reverse().find((l) => /Error|FATAL|PANIC|panic|"level":(50|60)/.test(l));
    return (hit ?? lines[0] ?? '').slice(0, 300);
  } catch {
    return '(no log)';
  }
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]; undefined once gone. */
function statOf(pid: number): string[] | undefined {
  try {
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The processes whose parent is `pid` (PostgreSQL's backends and auxiliaries are the postmaster's children). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    if (statOf(Number(entry))?.[1] === String(pid)) out.push(Number(entry));
  }
  return out;
}

/** Whether the process is stopped (state T) by a signal. */
export const isStopped = (pid: number) => statOf(pid)?.[0] === 'T';

/**
 * SIGSTOP/SIGCONT to a recorded process and its children: PostgreSQL's backends each lead a
 * process group of their own (postmaster children call setsid), so the postmaster's group is not
 * the server; its children, found by their parent pid, are. Returns the pids signalled.
 */
export function signalRecorded(rec: ProcessRecord, signal: 'SIGSTOP' | 'SIGCONT'): number[] {
  if (rec.pid === null) throw new Error(`${rec.name} has no pid`);
  return signalTree(rec.pid, signal);
}

/** SIGSTOP/SIGCONT to a process and its children (a postmaster and its backends); returns the pids signalled. */
export function signalTree(root: number, signal: 'SIGSTOP' | 'SIGCONT'): number[] {
  const pids = [root, ...childrenOf(root)];
  return signalPids(pids, signal);
}

/** The signal to each pid that still exists; returns the list. */
export function signalPids(pids: number[], signal: 'SIGSTOP' | 'SIGCONT'): number[] {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** The Redis master's port as the first Sentinel that answers names it. */
export async function sentinelMasterPort(state: ClusterState): Promise<number | undefined> {
  const s = state.redisSentinel;
  if (!s) return undefined;
  for (const addr of s.sentinels) {
    const [host, port] = addr.split(':');
    const r = new Redis({ host, port: Number(port), lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      const reply = (await r.call('SENTINEL', 'get-master-addr-by-name', s.master)) as [string, string] | null;
      if (reply) return Number(reply[1]);
    } catch {
      // the next Sentinel
    } finally {
      r.disconnect();
    }
  }
  return undefined;
}

/** The Patroni members of the cluster (`cluster start --ha`), as started (the names stay: after a failover patroni-1 may be a replica). */
export const patroniMembers = (state: ClusterState) => state.processes.filter((p) => p.role === 'patroni');

/** The member whose REST API answers 200 on /primary (it holds the leader key, its PostgreSQL is primary); undefined when none does. */
export async function patroniLeader(state: ClusterState): Promise<ProcessRecord | undefined> {
  for (const rec of patroniMembers(state)) {
    if (rec.controlPort === undefined || !running(rec)) continue;
    if (await memberIsLeader(rec.urls.restUrl ?? restUrl(rec.controlPort))) return rec;
  }
  return undefined;
}

/**
 * Waits (at most timeoutMs) until a Patroni member leads (other than `not`, when given) and HAProxy
 * routes its primary port to exactly one server: writes can reach a primary again. Returns the
 * leader; throws with what was seen when the time is up.
 */
export async function waitPatroniWritable(state: ClusterState, timeoutMs: number, not?: string): Promise<ProcessRecord> {
  const haproxy = state.processes.find((p) => p.role === 'haproxy');
  const deadline = Date.now() + timeoutMs;
  let leader: ProcessRecord | undefined;
  let routes = false;
  for (;;) {
    leader = await patroniLeader(state);
    routes = haproxy?.controlPort !== undefined ? await haproxyRoutesPrimary(haproxy.controlPort, haproxy.port) : true;
    if (leader && leader.name !== not && routes) return leader;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`no writable Patroni leader within ${timeoutMs} ms (leader: ${leader?.name ?? 'none'}${not ? `, not ${not}` : ''}; HAProxy routes writes: ${routes})`);
}

/**
 * Waits (at most timeoutMs) until the Patroni cluster is whole again: writable (see
 * waitPatroniWritable), and every other member running as a replica, one of them the synchronous
 * standby with --sync. Until then a fault of the leader may find no member Patroni may promote
 * (synchronous_mode promotes only the synchronous standby): a heal waits for this, so the next
 * fault starts from a redundant cluster. Throws with the members' roles when the time is up.
 */
export async function waitPatroniWhole(state: ClusterState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const leader = await waitPatroniWritable(state, timeoutMs);
  let seen = '';
  for (;;) {
    const others = patroniMembers(state).filter((m) => m.name !== leader.name);
    const roles = await Promise.all(others.map(async (m) => ({ name: m.name, ...(m.controlPort !== undefined ? await memberState(m.urls.restUrl ?? restUrl(m.controlPort)) : { role: 'unknown' as const }) })));
    seen = roles.map((r) => `${r.name} ${r.role}/${r.state ?? '?'}`).join(', ');
    const replicas = roles.every((r) => (r.role === 'replica' || r.role === 'sync_standby') && (r.state === 'running' || r.state === 'streaming'));
    const sync = !state.postgresHa?.sync || others.length === 0 || roles.some((r) => r.role === 'sync_standby');
    if (replicas && sync) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`the Patroni members are not all replicas of ${leader.name} within ${timeoutMs} ms (${seen})`);
}
