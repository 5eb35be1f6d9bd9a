// The chaos run's own cluster, driven only through the built CLI (`node dist/cli.js cluster ...
// --dir D`) and state.json: started with the topology's flags, each process acted on by name
// (kill, start-one) or signalled by the pid state.json records, and stopped at the end by pid
// (`cluster stop`, then SIGKILL to any recorded pid still running). The CLI commands run one at a
// time: each one rewrites state.json from what it read, and two at once could lose a pid.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { CLUSTER_USAGE } from '../src/operations/cluster/index.js';
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
      const res = await runCli(['cluster', ...args, '--dir', this.dir], this.env, 180_000);
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

  /** Starts every recorded process that does not run (after the faults: nothing is left down). */
  async healAll(): Promise<string[]> {
    const started: string[] = [];
    for (const rec of this.state().processes) {
      if (rec.pid !== null && running(rec)) continue;
      if (rec.role === 'prometheus') continue;
      this.say(`${rec.name} does not run after the faults: starting it`);
      await this.startOne(rec.name);
      started.push(rec.name);
    }
    return started;
  }

  /** cluster stop, then SIGKILL to any recorded pid still running: nothing of the run is left. */
  async stop(): Promise<void> {
    try {
      await this.cli('stop');
    } catch (err) {
      this.say(`cluster stop: ${(err as Error).message}`);
    }
    try {
      for (const rec of readState(this.dir).processes) if (running(rec)) await stopProcess(rec, 'kill');
    } catch (err) {
      this.say(`after cluster stop: ${(err as Error).message}`);
    }
  }
}

/** The process group a recorded pid leads (the cluster starts every server as a group leader), or undefined. */
export function groupLedBy(pid: number): number | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    return pgrp === pid ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** SIGSTOP/SIGCONT to a recorded process and, when it leads its group (PostgreSQL's backends), the whole group. */
export function signalRecorded(rec: ProcessRecord, signal: 'SIGSTOP' | 'SIGCONT'): void {
  if (rec.pid === null) throw new Error(`${rec.name} has no pid`);
  const group = groupLedBy(rec.pid);
  process.kill(group !== undefined ? -group : rec.pid, signal);
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
