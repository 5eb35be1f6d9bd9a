// Long-lived processes of a local topology (`task-api cluster`): each is spawned detached, with
// its output in a log file, so that it outlives the command that started it; it is known after
// that only by its pid, which is how it is stopped. Nothing here stops a process by name.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import { createServer, connect as netConnect } from 'node:net';

export const LOOPBACK = '127.0.0.1';

export interface LaunchSpec {
  command: string;
  args: string[];
  /** Appended to (created if missing): the process's stdout and stderr. */
  logFile: string;
  /** The process's whole environment; without it, the child inherits this process's (spawn's default). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this user and group (root starting servers that refuse to run as root). */
  user?: { uid: number; gid: number };
}

/** A command line to start a process again (what state.json records): a LaunchSpec without its log file. */
export type CommandLine = Omit<LaunchSpec, 'logFile' | 'env'> & { env: Record<string, string> };

/** Starts the process in its own process group, detached from this one; returns its pid. */
export function launch(spec: LaunchSpec): number {
  const fd = openSync(spec.logFile, 'a');
  try {
    const child = spawn(spec.command, spec.args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: spec.env,
      cwd: spec.cwd,
      ...(spec.user ?? {}),
    });
    if (child.pid === undefined) throw new Error(`could not start ${spec.command}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Whether a process with this pid exists (and is not a zombie of ours). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
  return stat !== '' && !stat.startsWith('Z');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends `signal` to the pid and waits until the process is gone; after `timeoutMs` it sends
 * SIGKILL (and says so in the result). A pid that is already gone is fine.
 */
export async function stopPid(pid: number, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<'stopped' | 'killed' | 'gone'> {
  if (!isAlive(pid)) return 'gone';
  try {
    process.kill(pid, signal);
  } catch {
    return 'gone';
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return 'stopped';
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return 'stopped';
  }
  while (isAlive(pid)) await sleep(50);
  return 'killed';
}

/** Polls `check` until it is true; throws naming `what` after timeoutMs, or when `pid` has exited. */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000, pid?: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (pid !== undefined && !isAlive(pid)) throw new Error(`${what}: the process (pid ${pid}) exited`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Whether a GET of the URL answers 2xx within 2 s (readiness endpoints). */
export async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** Whether something accepts TCP connections on the loopback port. */
export const tcpOpen = (port: number, host = LOOPBACK) =>
  new Promise<boolean>((resolve) => {
    const s = netConnect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

const canBind = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, LOOPBACK, () => srv.close(() => resolve(true)));
  });

/**
 * Hands out free loopback ports counting up from `base` (each checked by binding it), or, with
 * no base, ports the kernel picks. A port is never handed out twice by the same allocator.
 */
export class PortAllocator {
  private next: number;
  private readonly given = new Set<number>();
  constructor(private readonly base?: number) {
    this.next = base ?? 0;
  }
  async take(): Promise<number> {
    if (this.base === undefined) {
      for (;;) {
        const port = await kernelPort();
        if (!this.given.has(port)) {
          this.given.add(port);
          return port;
        }
      }
    }
    while (this.next < 65536) {
      const port = this.next++;
      if (!this.given.has(port) && (await canBind(port))) {
        this.given.add(port);
        return port;
      }
    }
    throw new Error(`no free port from ${this.base}`);
  }
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * The absolute path of an installed program: found on PATH, or in the sbin directories where
 * Debian puts servers (nginx, pgbouncer) and which a non-root PATH often lacks.
 */
export function findBinary(name: string, searchPath: string): string | undefined {
  const dirs = [...searchPath.split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
