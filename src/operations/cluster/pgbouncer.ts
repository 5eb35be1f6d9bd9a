// PgBouncer of a local topology (`task-api cluster`, the system tests): deploy/pgbouncer/pgbouncer.ini
// rendered for loopback (listen 127.0.0.1 on a given port, trust, a wildcard database to the
// local primary, or named ones, and the extra shards' databases on their own servers), started
// detached with its output in a log file, known after that by its pid.
// As root it runs as the postgres user: PgBouncer refuses to run as root.
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive, launch, LOOPBACK, stopPid, tcpOpen, waitUntil } from './processes.js';
import { serverUser } from './postgres.js';

/** The committed production file, which is the template of the local one. */
export const PGBOUNCER_TEMPLATE = fileURLToPath(new URL('../../../deploy/pgbouncer/pgbouncer.ini', import.meta.url));

export interface PgBouncerOptions {
  /** Where pgbouncer.ini and userlist.txt are written (created if missing). */
  dir: string;
  port: number;
  /** The primary PostgreSQL on 127.0.0.1. */
  primaryPort: number;
  logFile: string;
  /** Databases PgBouncer serves, each to the same name on the primary; default: '*' (any). */
  databases?: string[];
  /**
   * Databases on other servers of the topology (the extra shards' primaries), each served under
   * its own name: PgBouncer's name, the server's port on 127.0.0.1, the database there.
   */
  servers?: { name: string; port: number; dbname: string }[];
  /** default_pool_size; default: the template's (25, the seed's). */
  poolSize?: number;
  /** The user allowed on the admin console (SHOW POOLS, ...); default postgres. */
  adminUser?: string;
  /** Extra [pgbouncer] settings (name -> value), applied last. */
  settings?: Record<string, string>;
  timeoutMs?: number;
}

/** The ini as sections of ordered key/value lines; comments and blank lines are dropped. */
type Ini = Map<string, Map<string, string>>;

export function parseIni(text: string): Ini {
  const ini: Ini = new Map();
  let section: Map<string, string> | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = ini.get(header[1]!) ?? new Map<string, string>();
      ini.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !section) throw new Error(`pgbouncer.ini: cannot read the line "${line}"`);
    section.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return ini;
}

export function formatIni(ini: Ini): string {
  const out: string[] = [];
  for (const [name, entries] of ini) {
    out.push(`[${name}]`);
    for (const [k, v] of entries) out.push(`${k} = ${v}`);
    out.push('');
  }
  return out.join('\n');
}

/** The local topology's pgbouncer.ini: the template's pool settings, loopback and trust for the rest. */
export function renderPgBouncerIni(template: string, o: PgBouncerOptions & { authFile: string }): string {
  const ini = parseIni(template);
  const databases = new Map<string, string>();
  const target = `host=${LOOPBACK} port=${o.primaryPort}`;
  if (o.databases === undefined || o.databases.length === 0) databases.set('*', target);
  else for (const db of o.databases) databases.set(db, `${target} dbname=${db}`);
  for (const s of o.servers ?? []) databases.set(s.name, `host=${LOOPBACK} port=${s.port} dbname=${s.dbname}`);
  ini.set('databases', databases);
  const pgb = ini.get('pgbouncer') ?? new Map<string, string>();
  ini.set('pgbouncer', pgb);
  const admin = o.adminUser ?? 'postgres';
  const overrides: Record<string, string> = {
    listen_addr: LOOPBACK,
    listen_port: String(o.port),
    // Loopback only, like the local PostgreSQL servers (pg_hba trust for 127.0.0.1).
    auth_type: 'trust',
    auth_file: o.authFile,
    admin_users: admin,
    stats_users: admin,
    // No Unix socket, no pidfile, no log file of its own: it logs to stderr, the launcher's log file.
    unix_socket_dir: '',
    pidfile: '',
    logfile: '',
    ...(o.poolSize !== undefined ? { default_pool_size: String(o.poolSize) } : {}),
    ...o.settings,
  };
  for (const [k, v] of Object.entries(overrides)) pgb.set(k, v);
  return formatIni(ini);
}

/**
 * Writes <dir>/pgbouncer.ini (and the userlist trust needs) from the template, starts pgbouncer
 * detached and waits until it accepts connections on the port.
 */
export async function startPgBouncer(o: PgBouncerOptions): Promise<{ pid: number; port: number }> {
  mkdirSync(o.dir, { recursive: true });
  const iniFile = path.join(o.dir, 'pgbouncer.ini');
  const authFile = path.join(o.dir, 'userlist.txt');
  const admin = o.adminUser ?? 'postgres';
  // trust still requires the user to be listed; the secret is not checked.
  const users = [...new Set([admin, 'postgres'])].map((u) => `"${u}" ""`).join('\n');
  await writeFile(authFile, `${users}\n`);
  await writeFile(iniFile, renderPgBouncerIni(readFileSync(PGBOUNCER_TEMPLATE, 'utf8'), { ...o, authFile }));
  const user = serverUser();
  if (user) {
    // It reads the files again as that user on RELOAD (SIGHUP).
    for (const f of [o.dir, iniFile, authFile]) chownSync(f, user.uid, user.gid);
  }
  chmodSync(authFile, 0o600);
  // -u: as root, it reads its configuration, then becomes the postgres user before serving.
  const args = user ? ['-u', 'postgres', iniFile] : [iniFile];
  const pid = launch({ command: 'pgbouncer', args, logFile: o.logFile });
  await waitUntil(`PgBouncer on port ${o.port}`, () => tcpOpen(o.port), o.timeoutMs ?? 30_000, pid);
  return { pid, port: o.port };
}

/**
 * 'graceful': SIGINT, PgBouncer's safe shutdown (PAUSE then SHUTDOWN: transactions in flight
 * finish); SIGKILL if it has not exited after 30 s. 'kill': SIGKILL at once, as a crash.
 */
export async function stopPgBouncer(pid: number, mode: 'graceful' | 'kill' = 'graceful'): Promise<void> {
  if (!isAlive(pid)) return;
  await stopPid(pid, mode === 'graceful' ? 'SIGINT' : 'SIGKILL', 30_000);
}
