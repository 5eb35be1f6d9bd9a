// `cluster start --ha`: PostgreSQL made highly available by Patroni, as in production but on
// loopback ports. One etcd (the store Patroni's leader key lives in), Patroni members patroni-1
// (the first leader) ... patroni-N, each running its own PostgreSQL from its own data directory
// and answering its REST API on its own port, and HAProxy in front of them: one port to the
// leader (`OPTIONS /primary` answers 200 on the leader only) and one to the replicas (`OPTIONS /replica`).
// docs/decisions.md, "PostgreSQL failover: Patroni + HAProxy", says why this shape.
// Patroni runs PostgreSQL, which refuses to run as root: as root, Patroni runs as the postgres
// user and its files are that user's.
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { httpOk, isAlive, LOOPBACK, stopPid, type CommandLine } from './processes.js';
import { inNamespace } from './netns.js';
import { accepts, postgresBin, serverUser } from './postgres.js';

/** Patroni's cluster name (`scope`): the etcd keys live under /service/task-api/. */
export const PATRONI_SCOPE = 'task-api';

/**
 * Patroni's timing on the local topology: the leader key lives `ttl` seconds unless renewed,
 * each member runs its loop every `loop_wait` seconds, and a member gives up on etcd or
 * PostgreSQL after `retry_timeout` (loop_wait + 2 x retry_timeout must not exceed ttl). A
 * leader that dies without a word is replaced within about ttl + loop_wait: 20 s is the lowest
 * ttl Patroni's documentation allows (its default is 30, with loop_wait 10 and retry_timeout 10).
 */
export const PATRONI_TIMING = { ttl: 20, loop_wait: 2, retry_timeout: 5 } as const;

export interface PatroniMember {
  /** patroni-1, patroni-2, ... */
  name: string;
  /** Its PostgreSQL's port. */
  pgPort: number;
  /** Its REST API's port. */
  restPort: number;
  /** <cluster dir>/<name>: patroni.yml, the data directory (data/) and the pgpass file. */
  dir: string;
  /** Where its PostgreSQL and REST API listen: loopback, or (--netns) its namespace's address. */
  host: string;
  /** --netns: the network namespace it runs in (netns.ts). */
  namespace?: string;
}

export const memberDataDir = (m: Pick<PatroniMember, 'dir'>) => path.join(m.dir, 'data');
export const memberConfig = (m: Pick<PatroniMember, 'dir'>) => path.join(m.dir, 'patroni.yml');
export const restUrl = (port: number, host = LOOPBACK) => `http://${host}:${port}`;

export interface PatroniSettings {
  /** etcd's client port. */
  etcdPort: number;
  /** synchronous_mode: a commit returns once a replica has it too (`cluster start --sync`). */
  sync: boolean;
  /** Where the members reach etcd: loopback, or (--netns) the bridge's address. */
  etcdHost?: string;
  /** --netns: the members' subnet, let in by pg_hba besides loopback. */
  subnet?: string;
}

/**
 * A member's patroni.yml (written as JSON, which is YAML). The bootstrap section is read by the
 * first member only, when it initialises the cluster; the rest is each member's own.
 */
export function patroniConfig(m: PatroniMember, s: PatroniSettings): Record<string, unknown> {
  const bin = postgresBin();
  if (!bin) throw new Error('no PostgreSQL server installed (/usr/lib/postgresql/*/bin/postgres)');
  return {
    scope: PATRONI_SCOPE,
    name: m.name,
    log: { level: 'INFO' },
    restapi: { listen: `${m.host}:${m.restPort}`, connect_address: `${m.host}:${m.restPort}` },
    // etcd's v2 API (etcd --enable-v2), not etcd3: Patroni 3.0.2's etcd3 update_leader puts the
    // leader key unconditionally once its lease expired, so a leader whose loop was blocked past
    // ttl (its PostgreSQL frozen) took the key back from the member promoted meanwhile, which was
    // demoted and pg_rewound: the writes acknowledged on it were lost (docs/reliability.md, Known
    // defects; fixed upstream by patroni/patroni#2689). The v2 update is a compare-and-swap on
    // the key's value (prevValue: this member), which fails there, and the old leader demotes.
    etcd: { hosts: [`${s.etcdHost ?? LOOPBACK}:${s.etcdPort}`], protocol: 'http' },
    bootstrap: {
      dcs: {
        ...PATRONI_TIMING,
        // A replica further behind than this (bytes) is not promoted (Patroni's default, 1 MiB).
        maximum_lag_on_failover: 1048576,
        synchronous_mode: s.sync,
        // Strict would stop writes while no replica can confirm them (docs/runbooks/primary-failover.md).
        synchronous_mode_strict: false,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: {
            max_connections: 300,
            wal_level: 'replica',
            hot_standby: 'on',
            hot_standby_feedback: 'on',
            // pg_rewind needs the hint-bit changes in the WAL (or data checksums).
            wal_log_hints: 'on',
            max_wal_senders: 10,
            max_replication_slots: 10,
            wal_keep_size: '256MB',
            // --netns: a leader cut off from its replica stops (demotes) only once its WAL
            // sender gives up on the unanswering replica: after wal_sender_timeout (60 s by
            // default). Patroni 3.0.2 demotes a second time from its main loop while the first
            // stop still runs, and the two starts that follow leave a postmaster it no longer
            // knows (docs/runbooks/primary-failover.md): 5 s keeps the stop within one loop.
            ...(s.subnet ? { wal_sender_timeout: '5s' } : {}),
          },
        },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
      // Loopback only (and, with --netns, the members' own subnet), trust: like the self-made
      // servers of the local topology.
      pg_hba: [
        'host all all 127.0.0.1/32 trust',
        'host replication all 127.0.0.1/32 trust',
        ...(s.subnet ? [`host all all ${s.subnet} trust`, `host replication all ${s.subnet} trust`] : []),
      ],
    },
    postgresql: {
      listen: `${m.host}:${m.pgPort}`,
      connect_address: `${m.host}:${m.pgPort}`,
      data_dir: memberDataDir(m),
      bin_dir: bin,
      pgpass: path.join(m.dir, 'pgpass'),
      authentication: { superuser: { username: 'postgres' }, replication: { username: 'postgres' }, rewind: { username: 'postgres' } },
      // A checkpoint at once for a new replica's base backup: a spread one holds the copy for minutes.
      basebackup: [{ checkpoint: 'fast' }],
      // An old leader that pg_rewind cannot bring back is copied afresh instead of left out.
      remove_data_directory_on_rewind_failure: true,
      remove_data_directory_on_diverged_timelines: true,
      parameters: { unix_socket_directories: '' },
    },
  };
}

/** Writes the member's directory (the server user's when root) and its patroni.yml. */
export async function prepareMember(m: PatroniMember, s: PatroniSettings): Promise<void> {
  mkdirSync(m.dir, { recursive: true, mode: 0o700 });
  const file = memberConfig(m);
  await writeFile(file, `${JSON.stringify(patroniConfig(m, s), null, 2)}\n`, { mode: 0o600 });
  const user = serverUser();
  if (user) for (const f of [m.dir, file]) chownSync(f, user.uid, user.gid);
}

/**
 * `patroni <its yml>`, as the server user when root; with --netns, inside the member's namespace
 * (`ip netns exec <ns> setpriv ... patroni <yml>`, started as root: the pid is still Patroni's).
 */
export function patroniCommand(m: PatroniMember, binary: string, pathEnv: string): CommandLine {
  const user = serverUser();
  const env = { PATH: pathEnv, HOME: m.dir };
  if (m.namespace) return { ...inNamespace(m.namespace, binary, [memberConfig(m)], user), env };
  return { command: binary, args: [memberConfig(m)], env, ...(user ? { user } : {}) };
}

/** What a member's REST API says of it (`GET /patroni`). */
export interface MemberState {
  /** leader, sync_standby (a replica that confirms commits), replica; 'unknown' when it does not answer. */
  role: 'leader' | 'sync_standby' | 'replica' | 'unknown';
  /** PostgreSQL's state as Patroni sees it: running, starting, stopped, ... */
  state?: string;
  timeline?: number;
}

async function getJson(url: string, timeoutMs = 2000): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** The member's role and PostgreSQL state from its REST API (its base URL); 'unknown' when it does not answer. */
export async function memberState(rest: string): Promise<MemberState> {
  try {
    const { body } = await getJson(`${rest}/patroni`);
    const b = body as { role?: string; state?: string; timeline?: number; sync_standby?: boolean };
    const role = b.role === 'master' || b.role === 'primary' ? 'leader' : b.role === 'replica' ? (b.sync_standby ? 'sync_standby' : 'replica') : 'unknown';
    return { role, ...(b.state ? { state: b.state } : {}), ...(b.timeline !== undefined ? { timeline: b.timeline } : {}) };
  } catch {
    return { role: 'unknown' };
  }
}

/** The member's PostgreSQL runs (`GET /health` answers 200). */
export const memberHealthy = (rest: string) => httpOk(`${rest}/health`);
/** The member holds the leader key and its PostgreSQL runs as primary (`GET /primary` answers 200). */
export const memberIsLeader = (rest: string) => httpOk(`${rest}/primary`);

/** The postmaster's pid from the data directory's postmaster.pid, while that process lives. */
export function postmasterPid(dataDir: string): number | undefined {
  const file = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return undefined;
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Stops a member: 'graceful' is SIGTERM to Patroni, which stops its PostgreSQL (fast) and, when
 * it is the leader, hands the leader key back; 'kill' is the machine dying: SIGKILL to Patroni
 * and to its postmaster (which a killed Patroni leaves running). Either way nothing of the
 * member is left: a postmaster still running after Patroni exited is stopped too.
 */
export async function stopMember(pid: number, dataDir: string, pgPort: number, how: 'graceful' | 'kill', host = LOOPBACK): Promise<void> {
  const postmaster = postmasterPid(dataDir);
  if (how === 'kill') {
    await stopPid(pid, 'SIGKILL', 10_000);
    if (postmaster !== undefined) await stopPid(postmaster, 'SIGKILL', 10_000);
  } else {
    await stopPid(pid, 'SIGTERM', 90_000);
    const left = postmasterPid(dataDir);
    if (left !== undefined) await stopPid(left, 'SIGINT', 60_000);
  }
  const deadline = Date.now() + 30_000;
  while (accepts(pgPort, host) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

/**
 * etcd, one member on loopback: its data under `dir`. With `alsoOn` (--netns: the bridge's
 * address) it listens there too and advertises that address alone: the members, in their
 * namespaces, must not be told of a 127.0.0.1 that is their own loopback.
 */
export function etcdCommand(o: { dir: string; clientPort: number; peerPort: number; binary: string; path: string; alsoOn?: string }): CommandLine {
  const loopbackClient = `http://${LOOPBACK}:${o.clientPort}`;
  const client = o.alsoOn ? `http://${o.alsoOn}:${o.clientPort}` : loopbackClient;
  const peer = `http://${LOOPBACK}:${o.peerPort}`;
  return {
    command: o.binary,
    args: [
      '--name',
      'etcd',
      '--data-dir',
      o.dir,
      '--listen-client-urls',
      o.alsoOn ? `${loopbackClient},${client}` : client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `etcd=${peer}`,
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      `task-api-${o.clientPort}`,
      '--logger',
      'zap',
      '--log-outputs',
      'stderr',
      // Patroni's `etcd` section speaks the v2 API (see patroniConfig).
      '--enable-v2',
    ],
    env: { PATH: o.path },
  };
}

export const etcdUrl = (port: number) => `http://${LOOPBACK}:${port}`;

/** etcd answers `GET /health` with {"health":"true"}. */
export async function etcdHealthy(port: number): Promise<boolean> {
  try {
    const { status, body } = await getJson(`${etcdUrl(port)}/health`);
    return status === 200 && (body as { health?: unknown }).health === 'true';
  } catch {
    return false;
  }
}

export interface HaproxyLayout {
  /** Connections to the leader (writes). */
  primaryPort: number;
  /** Connections to a replica (reads that may lag). */
  replicaPort: number;
  /** The statistics page (/stats, ;csv for machines). */
  statsPort: number;
  members: (Pick<PatroniMember, 'name' | 'pgPort' | 'restPort'> & { host?: string })[];
}

/**
 * haproxy.cfg: TCP to the members' PostgreSQL, each checked every second through its Patroni
 * REST API. A server that fails 2 checks in a row is down, and `on-marked-down shutdown-sessions`
 * cuts the connections through it at once (PgBouncer's server connections to a demoted or
 * unreachable leader end, and PgBouncer reconnects to the new one); 2 good checks bring it up.
 */
export function renderHaproxyConfig(l: HaproxyLayout): string {
  const servers = (indent: string) => l.members.map((m) => `${indent}server ${m.name} ${m.host ?? LOOPBACK}:${m.pgPort} check port ${m.restPort}`);
  return [
    '# task-api cluster --ha: HAProxy in front of the Patroni members (src/operations/cluster/patroni.ts).',
    'global',
    '    maxconn 2000',
    '',
    'defaults',
    '    mode tcp',
    '    timeout connect 2s',
    // PgBouncer keeps its server connections open for minutes; the API's for its pool's life.
    '    timeout client 30m',
    '    timeout server 30m',
    '    timeout check 2s',
    '    retries 2',
    '    default-server inter 1s fastinter 500ms downinter 1s rise 2 fall 2 on-marked-down shutdown-sessions',
    '',
    'listen stats',
    '    mode http',
    `    bind ${LOOPBACK}:${l.statsPort}`,
    '    stats enable',
    '    stats uri /stats',
    '',
    'listen primary',
    `    bind ${LOOPBACK}:${l.primaryPort}`,
    '    option httpchk OPTIONS /primary',
    '    http-check expect status 200',
    ...servers('    '),
    '',
    'listen replicas',
    `    bind ${LOOPBACK}:${l.replicaPort}`,
    '    balance leastconn',
    '    option httpchk OPTIONS /replica',
    '    http-check expect status 200',
    ...servers('    '),
    '',
  ].join('\n');
}

export async function writeHaproxyConfig(file: string, l: HaproxyLayout): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await writeFile(file, renderHaproxyConfig(l), { mode: 0o644 });
}

/** haproxy in the foreground (-db), checked first (-c) by the caller when it wants to. */
export function haproxyCommand(conf: string, binary: string, pathEnv: string): CommandLine {
  return { command: binary, args: ['-db', '-f', conf], env: { PATH: pathEnv } };
}

/** Each server's state in a proxy of HAProxy's statistics (CSV): name -> UP, DOWN, "UP 1/2", ... */
export async function haproxyServers(statsPort: number, proxy: string): Promise<Map<string, string>> {
  const { status, body } = await getJson(`http://${LOOPBACK}:${statsPort}/stats;csv`);
  if (status !== 200 || typeof body !== 'string') throw new Error(`HAProxy statistics answered ${status}`);
  const out = new Map<string, string>();
  for (const line of body.split('\n')) {
    const cols = line.split(',');
    if (cols[0] === proxy && cols[1] !== 'FRONTEND' && cols[1] !== 'BACKEND' && cols[17]) out.set(cols[1]!, cols[17]);
  }
  return out;
}

/** HAProxy routes its primary port to exactly one server (the leader), and that server takes connections. */
export async function haproxyRoutesPrimary(statsPort: number, primaryPort: number): Promise<boolean> {
  try {
    const servers = [...(await haproxyServers(statsPort, 'primary')).values()];
    return servers.filter((s) => s === 'UP').length === 1 && servers.every((s) => s === 'UP' || s.startsWith('DOWN')) && accepts(primaryPort);
  } catch {
    return false;
  }
}
