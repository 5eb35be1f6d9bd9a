// Child processes of the bench: every one is registered here and killed by its pid on exit,
// error or SIGINT. Also: waiting for a URL, and memory sampling (free ports: tools/local.ts).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pollUntilOk } from '../tools/local.js';

/** The repository root (build/bench/procs.js -> ../..). */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const children = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills every child still running, each by its own pid. */
export function killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, signal);
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

let installed = false;
export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  process.once('exit', () => killAll());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\nbench: ${sig}, stopping children`);
      killAll();
      process.exit(1);
    });
  }
}

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  return track(spawn(cmd, args, { cwd: ROOT, ...opts }));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded by timeoutMs), collecting its output. */
export function runToEnd(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, onStderr?: (s: string) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(d.toString());
    });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no exit within ${timeoutMs} ms`));
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

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls url until it answers 2xx, the child exits, or timeoutMs passes. */
export async function waitForUrl(url: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const outcome = await pollUntilOk(url, { timeoutMs, exited: () => child.exitCode !== null });
  if (outcome === 'exited') throw new Error(`process exited with ${child.exitCode} before ${url} answered:\n${output()}`);
  if (outcome === 'timeout') throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${output()}`);
}

/** VmRSS of a process in MB, or NaN when it cannot be read. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Samples VmRSS every intervalMs until stopped; returns the maximum seen. */
export function sampleRss(pid: number | undefined, intervalMs = 100): () => number {
  if (pid === undefined) return () => NaN;
  let max = rssMb(pid);
  const timer = setInterval(() => {
    const v = rssMb(pid);
    if (!Number.isNaN(v)) max = Number.isNaN(max) ? v : Math.max(max, v);
  }, intervalMs);
  return () => {
    clearInterval(timer);
    const v = rssMb(pid);
    return Number.isNaN(v) ? max : Math.max(max, v);
  };
}

/** The pids of a process's descendants (Linux /proc: each process's parent, field 4 of its stat). */
function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after its last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

/**
 * Proportional set size (Pss, MB) of a process and all its descendants, summed: memory shared
 * between them (PostgreSQL's shared buffers, shared by every backend) counted once, where summed
 * VmRSS would count it in each. NaN when the process cannot be read.
 */
export function pssTreeMb(root: number): number {
  let kb = 0;
  for (const pid of [root, ...descendantsOf(root)]) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
      else if (pid === root) return NaN;
    } catch {
      if (pid === root) return NaN;
    }
  }
  return kb / 1024;
}
