// `cluster start --ha`: the PostgreSQL part of the topology under Patroni instead of the
// self-made primary and replicas (patroni.ts has the programs' configurations). In order: etcd;
// patroni-1, which initialises the cluster and takes the leader key; the databases, on it; the
// other members, each a replica made by Patroni from the leader (pg_basebackup); HAProxy in front.
import path from 'node:path';
import {
  etcdCommand,
  etcdUrl,
  haproxyCommand,
  memberDataDir,
  memberIsLeader,
  PATRONI_SCOPE,
  patroniCommand,
  prepareMember,
  restUrl,
  writeHaproxyConfig,
  type PatroniMember,
} from './patroni.js';
import { pgUrl, psql } from './postgres.js';
import { waitUntil } from './processes.js';
import type { CommandLine, ProcessRecord, Role } from './state.js';

export interface HaPlan {
  etcdPort: number;
  etcdPeerPort: number;
  members: PatroniMember[];
  haproxy: { primaryPort: number; replicaPort: number; statsPort: number };
}

/** The ports of the HA topology: 1 + `replicas` members (PostgreSQL and REST API each), etcd, HAProxy. */
export async function planHa(dir: string, replicas: number, take: () => Promise<number>): Promise<HaPlan> {
  const members: PatroniMember[] = [];
  for (let i = 0; i < 1 + replicas; i++) {
    const name = `patroni-${i + 1}`;
    members.push({ name, pgPort: await take(), restPort: await take(), dir: path.join(dir, name) });
  }
  return {
    etcdPort: await take(),
    etcdPeerPort: await take(),
    members,
    haproxy: { primaryPort: await take(), replicaPort: await take(), statsPort: await take() },
  };
}

export interface HaContext {
  dir: string;
  plan: HaPlan;
  sync: boolean;
  bins: { patroni: string; etcd: string; haproxy: string };
  pathEnv: string;
  /** The databases to create on the first leader. */
  databases: string[];
  /** Records the process, starts it and waits until it is ready. */
  bring: (rec: ProcessRecord) => Promise<void>;
  log: (name: string) => string;
}

function record(name: string, role: Role, port: number, urls: Record<string, string>, logFile: string, cmd: CommandLine): ProcessRecord {
  return { name, role, pid: null, port, urls, logFile, start: { kind: 'command', ...cmd } };
}

const LEADER_WAIT_MS = 120_000;

export async function startHa(c: HaContext): Promise<void> {
  const { plan } = c;
  const database = c.databases[0] ?? 'postgres';
  const etcdCmd = etcdCommand({ dir: path.join(c.dir, 'etcd'), clientPort: plan.etcdPort, peerPort: plan.etcdPeerPort, binary: c.bins.etcd, path: c.pathEnv });
  await c.bring(record('etcd', 'etcd', plan.etcdPort, { url: etcdUrl(plan.etcdPort) }, c.log('etcd'), etcdCmd));
  const settings = { etcdPort: plan.etcdPort, sync: c.sync };
  const member = async (m: PatroniMember) => {
    await prepareMember(m, settings);
    const rec = record(m.name, 'patroni', m.pgPort, { url: pgUrl(m.pgPort, database), restUrl: restUrl(m.restPort) }, c.log(m.name), patroniCommand(m, c.bins.patroni, c.pathEnv));
    await c.bring({ ...rec, dataDir: memberDataDir(m), controlPort: m.restPort });
  };
  const [first, ...others] = plan.members;
  await member(first!);
  await waitUntil(`${first!.name} holds the leader key (its log: ${c.log(first!.name)})`, () => memberIsLeader(first!.restPort), LEADER_WAIT_MS);
  for (const db of c.databases) psql(first!.pgPort, `CREATE DATABASE ${db}`);
  // One at a time: each copies the leader (a base backup), which loads the machine.
  for (const m of others) await member(m);
  const conf = path.join(c.dir, 'haproxy', 'haproxy.cfg');
  await writeHaproxyConfig(conf, { ...plan.haproxy, members: plan.members });
  const h = plan.haproxy;
  await c.bring({
    ...record(
      'haproxy',
      'haproxy',
      h.primaryPort,
      { url: pgUrl(h.primaryPort, database), replicaUrl: pgUrl(h.replicaPort, database), statsUrl: `http://127.0.0.1:${h.statsPort}/stats` },
      c.log('haproxy'),
      haproxyCommand(conf, c.bins.haproxy, c.pathEnv),
    ),
    controlPort: h.statsPort,
  });
}

export const haState = (sync: boolean) => ({ scope: PATRONI_SCOPE, sync });

/**
 * PgBouncer in front of HAProxy. While no member leads (a failover: about ttl), every transaction
 * waits in PgBouncer's queue for a server connection, up to query_wait_timeout: the template's
 * 30 s would hold each request past any client's patience (and past NGINX's retries). 3 s: the
 * API answers 503 with Retry-After instead, and a GET NGINX retries on the other instances (3
 * tries) is still answered within 10 s.
 */
export const HA_PGBOUNCER_SETTINGS: Record<string, string> = { query_wait_timeout: '3' };
