// PostgreSQL servers of a local topology, from the installed binaries: a primary made by initdb
// and streaming replicas made from it by pg_basebackup -R, each on its own loopback port and data
// directory, with no Unix socket. As root, the servers run as the package's postgres user (they
// refuse to run as root).
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive, launch, LOOPBACK, stopPid, waitUntil, type LaunchSpec } from './processes.js';

/** The newest installed PostgreSQL server's bin directory (Debian: /usr/lib/postgresql/N/bin). */
export function postgresBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(path.join(base, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : path.join(base, versions[0], 'bin');
}

function bin(name: string): string {
  const dir = postgresBin();
  if (!dir) throw new Error('no PostgreSQL server installed (/usr/lib/postgresql/*/bin/postgres)');
  return path.join(dir, name);
}

/** initdb and postgres refuse to run as root: as root, run them as the package's postgres user. */
export function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root and no postgres user exists to run PostgreSQL as');
  return { uid, gid };
}

export interface PgNode {
  name: string;
  port: number;
  dataDir: string;
  logFile: string;
  /** The postmaster's pid while it runs. */
  pid?: number;
}

export const pgUrl = (port: number, database = 'postgres', host = LOOPBACK) => `postgres://postgres@${host}:${port}/${database}`;

/** Runs a client or setup binary of the installed PostgreSQL (as the server user when root). */
function run(name: string, args: string[], asServerUser: boolean): string {
  const res = spawnSync(bin(name), args, { encoding: 'utf8', ...(asServerUser ? serverUser() : {}) });
  if (res.status !== 0) throw new Error(`${name} ${args.join(' ')} failed: ${res.stderr || res.stdout}`);
  return res.stdout;
}

function ownedDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const user = serverUser();
  if (user) chownSync(dir, user.uid, user.gid);
}

export interface PrimaryOptions {
  /** postgresql.conf settings added to the defaults below (name -> value, written as given). */
  settings?: Record<string, string>;
}

/**
 * initdb for a primary that replicas can stream from: trust for loopback connections and for
 * replication (a local topology; nothing listens beyond 127.0.0.1), hot standby feedback.
 */
export async function initPrimary(node: PgNode, opts: PrimaryOptions = {}): Promise<void> {
  ownedDir(node.dataDir);
  run('initdb', ['-D', node.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], true);
  const settings: Record<string, string> = {
    max_connections: '300',
    wal_level: 'replica',
    max_wal_senders: '10',
    max_replication_slots: '10',
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    wal_keep_size: "'256MB'",
    ...opts.settings,
  };
  const conf = Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n');
  await appendFile(path.join(node.dataDir, 'postgresql.conf'), `\n# task-api cluster\n${conf}\n`);
  await writeFile(
    path.join(node.dataDir, 'pg_hba.conf'),
    ['# task-api cluster: loopback only', 'host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust', ''].join('\n'),
  );
}

export interface ReplicaOptions {
  /** recovery_min_apply_delay in milliseconds: a replica that lags on purpose. */
  applyDelayMs?: number;
  /** A physical replication slot on the primary, so that it keeps the WAL this replica needs. */
  slot?: string;
}

/** pg_basebackup -R from the running primary: the replica's data directory, ready to start. */
export async function initReplica(primary: PgNode, node: PgNode, opts: ReplicaOptions = {}): Promise<void> {
  ownedDir(node.dataDir);
  // -c fast: checkpoint at once; a spread checkpoint (the default) holds the copy for minutes.
  const args = ['-h', LOOPBACK, '-p', String(primary.port), '-U', 'postgres', '-D', node.dataDir, '-R', '-X', 'stream', '--no-sync', '-c', 'fast'];
  if (opts.slot) args.push('-C', '-S', opts.slot);
  run('pg_basebackup', args, true);
  if (opts.applyDelayMs !== undefined) {
    await appendFile(path.join(node.dataDir, 'postgresql.auto.conf'), `recovery_min_apply_delay = '${opts.applyDelayMs}ms'\n`);
  }
}

/** The command that runs the server on its port (loopback, no Unix socket), as its user when root. */
export function nodeLaunchSpec(node: PgNode): LaunchSpec {
  const user = serverUser();
  return {
    command: bin('postgres'),
    args: ['-D', node.dataDir, '-p', String(node.port), '-c', `listen_addresses=${LOOPBACK}`, '-c', 'unix_socket_directories='],
    logFile: node.logFile,
    ...(user ? { user } : {}),
  };
}

/** Starts the server on its port (loopback, no Unix socket) and waits until it accepts connections. */
export async function startNode(node: PgNode, timeoutMs = 60_000): Promise<number> {
  const user = serverUser();
  if (user && !existsSync(node.logFile)) {
    await writeFile(node.logFile, '');
  }
  const pid = launch(nodeLaunchSpec(node));
  node.pid = pid;
  await waitUntil(`PostgreSQL ${node.name} on port ${node.port}`, () => accepts(node.port), timeoutMs, pid);
  return pid;
}

/** Whether the server on the port accepts connections (pg_isready; a --netns member on its own address). */
export function accepts(port: number, host = LOOPBACK): boolean {
  return spawnSync(bin('pg_isready'), ['-q', '-h', host, '-p', String(port), '-U', 'postgres', '-t', '3'], { stdio: 'ignore' }).status === 0;
}

/**
 * Stops the server by its pid: 'fast' (SIGINT: disconnect clients, checkpoint), 'immediate'
 * (SIGQUIT: no checkpoint, crash recovery on the next start) or 'kill' (SIGKILL to the
 * postmaster, as a crash; its children exit when they notice).
 */
export async function stopNode(node: PgNode, mode: 'fast' | 'immediate' | 'kill' = 'fast'): Promise<void> {
  if (node.pid === undefined || !isAlive(node.pid)) return;
  const signal: NodeJS.Signals = mode === 'fast' ? 'SIGINT' : mode === 'immediate' ? 'SIGQUIT' : 'SIGKILL';
  await stopPid(node.pid, signal, 60_000);
  // The postmaster's children (backends, WAL sender) leave on their own once it is gone; the port
  // is free when none of them holds it.
  await waitUntil(`PostgreSQL ${node.name} released port ${node.port}`, () => !accepts(node.port), 30_000);
  node.pid = undefined;
}

/** A query through psql (tuples only, unaligned): for setup and checks, not for the API. */
export function psql(port: number, query: string, database = 'postgres', host = LOOPBACK): string {
  return run('psql', ['-h', host, '-p', String(port), '-U', 'postgres', '-d', database, '-Atqc', query], false).trim();
}
