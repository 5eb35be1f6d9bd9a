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
import { createNetwork, planNetwork, type NetworkRecord } from './netns.js';
import { pgUrl, psql } from './postgres.js';
import { LOOPBACK, waitUntil } from './processes.js';
import type { CommandLine, ProcessRecord, Role } from './state.js';

export interface HaPlan {
  etcdPort: number;
  etcdPeerPort: number;
  members: PatroniMember[];
  haproxy: { primaryPort: number; replicaPort: number; statsPort: number };
  /** --netns: each member in a network namespace of its own, behind a bridge (netns.ts). */
  network?: NetworkRecord;
}

/**
 * The ports of the HA topology: 1 + `replicas` members (PostgreSQL and REST API each), etcd,
 * HAProxy; with `netns`, the names and addresses of the members' namespaces (made by startHa).
 */
export async function planHa(dir: string, replicas: number, take: () => Promise<number>, netns = false): Promise<HaPlan> {
  const names = Array.from({ length: 1 + replicas }, (_, i) => `patroni-${i + 1}`);
  const network = netns ? planNetwork(names) : undefined;
  const members: PatroniMember[] = [];
  for (const [i, name] of names.entries()) {
    const net = network?.members[i];
    members.push({ name, pgPort: await take(), restPort: await take(), dir: path.join(dir, name), host: net?.address ?? LOOPBACK, ...(net ? { namespace: net.namespace } : {}) });
  }
  return {
    ...(network ? { network } : {}),
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
  // --netns: the bridge and the namespaces first (already recorded in state.json by the caller).
  const net = plan.network;
  if (net) createNetwork(net);
  const etcdCmd = etcdCommand({ dir: path.join(c.dir, 'etcd'), clientPort: plan.etcdPort, peerPort: plan.etcdPeerPort, binary: c.bins.etcd, path: c.pathEnv, ...(net ? { alsoOn: net.hostAddress } : {}) });
  await c.bring(record('etcd', 'etcd', plan.etcdPort, { url: etcdUrl(plan.etcdPort) }, c.log('etcd'), etcdCmd));
  const settings = { etcdPort: plan.etcdPort, sync: c.sync, ...(net ? { etcdHost: net.hostAddress, subnet: net.subnet } : {}) };
  const member = async (m: PatroniMember) => {
    await prepareMember(m, settings);
    const urls = { url: pgUrl(m.pgPort, database, m.host), restUrl: restUrl(m.restPort, m.host) };
    const rec = record(m.name, 'patroni', m.pgPort, urls, c.log(m.name), patroniCommand(m, c.bins.patroni, c.pathEnv));
    await c.bring({ ...rec, dataDir: memberDataDir(m), controlPort: m.restPort, ...(m.host !== LOOPBACK ? { host: m.host } : {}) });
  };
  const [first, ...others] = plan.members;
  await member(first!);
  await waitUntil(`${first!.name} holds the leader key (its log: ${c.log(first!.name)})`, () => memberIsLeader(restUrl(first!.restPort, first!.host)), LEADER_WAIT_MS);
  for (const db of c.databases) psql(first!.pgPort, `CREATE DATABASE ${db}`, 'postgres', first!.host);
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

export const haState = (sync: boolean, netns = false) => ({ scope: PATRONI_SCOPE, sync, ...(netns ? { netns: true } : {}) });

/**
 * PgBouncer in front of HAProxy. While no member leads (a failover: about ttl), every transaction
 * waits in PgBouncer's queue for a server connection, up to query_wait_timeout: the template's
 * 30 s would hold each request past any client's patience (and past NGINX's retries). 3 s: the
 * API answers 503 with Retry-After instead, and a GET NGINX retries on the other instances (3
 * tries) is still answered within 10 s.
 */
export const HA_PGBOUNCER_SETTINGS: Record<string, string> = { query_wait_timeout: '3' };
