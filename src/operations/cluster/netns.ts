// `cluster start --ha --netns`: each Patroni member on a "host" of its own, a network namespace
// made by the runner, so that a member can be cut off from everything else (`cluster partition`)
// while it keeps running: a partition, not a crash. The layout is one L2 segment, no routing and
// no sysctl on the host: a bridge in the host's namespace (address 10.231.X.1/24, X chosen per
// cluster among the /24s no interface uses), and one veth pair per member, its host end a port of
// the bridge, its other end (eth0) in the member's namespace with 10.231.X.(10+N)/24. etcd,
// HAProxy and the API instances stay on the host and reach the members over the bridge (etcd
// listens on the bridge's address too). `partition` sets the member's host end down: the member
// reaches nothing and nothing reaches it, and no packet is answered (no reset: connections hang
// until their timeouts, as across a real partition); `heal` sets it up again.
//
// Every name is registered in state.json before it is made (a failed start is cleaned up by
// `cluster stop` like its processes), and only registered names are deleted, each checked to
// exist first. A name is chosen only when nothing of that name exists.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { findBinary, sleep } from './processes.js';

/** What a --netns cluster made (or is about to make): state.json's `network`. */
export interface NetworkRecord {
  /** The bridge in the host's namespace (≤ 15 characters, like every link name). */
  bridge: string;
  /** The bridge's address, which etcd also listens on: 10.231.X.1. */
  hostAddress: string;
  /** 10.231.X.0/24: pg_hba lets it in. */
  subnet: string;
  members: MemberNetwork[];
}

export interface MemberNetwork {
  /** patroni-N */
  member: string;
  /** Its network namespace (`ip netns exec <namespace> ...`). */
  namespace: string;
  /** The veth end on the host, a port of the bridge: down while the member is partitioned. */
  hostLink: string;
  /** Its address inside the namespace (PostgreSQL and the REST API listen there). */
  address: string;
}

function ipBinary(): string {
  const ip = findBinary('ip', '');
  if (!ip) throw new Error('--netns needs iproute2 (ip) installed');
  return ip;
}

function ip(args: string[], okToFail = false): { ok: boolean; out: string } {
  const r = spawnSync(ipBinary(), args, { encoding: 'utf8' });
  const ok = r.status === 0;
  if (!ok && !okToFail) throw new Error(`ip ${args.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error ?? '')).trim()}`);
  return { ok, out: r.stdout ?? '' };
}

const namespaces = (): Set<string> => new Set(ip(['netns', 'list'], true).out.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));
const linkExists = (name: string) => ip(['link', 'show', 'dev', name], true).ok;

/** The third octet of a 10.231.X.0/24 no interface of the host has an address in. */
function freeSubnet(): number {
  const used = ip(['-o', 'addr'], true).out;
  const candidates = [...Array(254).keys()].map((i) => i + 1).filter((x) => !used.includes(`10.231.${x}.`));
  if (candidates.length === 0) throw new Error('no free 10.231.X.0/24 for --netns');
  return candidates[randomBytes(2).readUInt16BE(0) % candidates.length]!;
}

/** Names and addresses for a cluster's members (patroni-1 ... patroni-N), none of which exists yet. */
export function planNetwork(memberNames: string[]): NetworkRecord {
  if (process.getuid?.() !== 0) throw new Error('--netns makes network namespaces: run as root');
  ipBinary();
  const taken = namespaces();
  for (let attempt = 0; attempt < 20; attempt++) {
    const tag = randomBytes(2).toString('hex');
    const x = freeSubnet();
    const plan: NetworkRecord = {
      bridge: `taskapi${tag}-br`,
      hostAddress: `10.231.${x}.1`,
      subnet: `10.231.${x}.0/24`,
      members: memberNames.map((member, i) => ({
        member,
        namespace: `taskapi-${tag}-p${i + 1}`,
        hostLink: `taskapi${tag}-v${i + 1}`,
        address: `10.231.${x}.${10 + i + 1}`,
      })),
    };
    const names = [plan.bridge, ...plan.members.map((m) => m.hostLink)];
    if (names.every((n) => !linkExists(n)) && plan.members.every((m) => !taken.has(m.namespace))) return plan;
  }
  throw new Error('could not choose unused names for the network namespaces');
}

/** Makes the bridge, then each member's namespace and veth pair (`record` has been saved before). */
export function createNetwork(n: NetworkRecord): void {
  ip(['link', 'add', n.bridge, 'type', 'bridge']);
  ip(['addr', 'add', `${n.hostAddress}/24`, 'dev', n.bridge]);
  ip(['link', 'set', n.bridge, 'up']);
  for (const m of n.members) {
    ip(['netns', 'add', m.namespace]);
    ip(['netns', 'exec', m.namespace, 'ip', 'link', 'set', 'lo', 'up']);
    ip(['link', 'add', m.hostLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', m.namespace]);
    ip(['link', 'set', m.hostLink, 'master', n.bridge]);
    ip(['link', 'set', m.hostLink, 'up']);
    ip(['netns', 'exec', m.namespace, 'ip', 'addr', 'add', `${m.address}/24`, 'dev', 'eth0']);
    ip(['netns', 'exec', m.namespace, 'ip', 'link', 'set', 'eth0', 'up']);
  }
}

/**
 * Deletes what `n` names and still exists: the namespaces, the host ends of the veth pairs (a
 * namespace a process still holds keeps its pair: deleted by name too), the bridge. Returns what
 * could not be deleted.
 */
export async function removeNetwork(n: NetworkRecord): Promise<string[]> {
  const existing = namespaces();
  for (const m of n.members) if (existing.has(m.namespace)) ip(['netns', 'delete', m.namespace], true);
  // A deleted namespace takes its veth pair with it, a moment later: each host end is deleted by
  // name only if it is still there after that.
  const gone = async (name: string) => {
    for (let i = 0; i < 50 && linkExists(name); i++) {
      ip(['link', 'delete', name], true);
      if (linkExists(name)) await sleep(100);
    }
    return !linkExists(name);
  };
  const problems: string[] = [];
  const left = namespaces();
  for (const m of n.members) {
    if (left.has(m.namespace)) problems.push(`namespace ${m.namespace}`);
    if (!(await gone(m.hostLink))) problems.push(`link ${m.hostLink}`);
  }
  if (!(await gone(n.bridge))) problems.push(`bridge ${n.bridge}`);
  return problems;
}

/** The pids of the processes in the namespace (`ip netns pids`): only this cluster's member runs there. */
export function namespacePids(namespace: string): number[] {
  if (!namespaces().has(namespace)) return [];
  return ip(['netns', 'pids', namespace], true)
    .out.split('\n')
    .map((l) => Number(l.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

/** Cuts the member off (its host end down) or brings it back (up). */
export function setPartitioned(m: MemberNetwork, partitioned: boolean): void {
  ip(['link', 'set', m.hostLink, partitioned ? 'down' : 'up']);
}

/**
 * The command line run inside the member's namespace: `ip netns exec <ns> [setpriv ...] <command>`.
 * Both exec the next program, so the pid launched is the command's own (Patroni's). Switching to
 * the server user happens inside (setpriv), after `ip` has entered the namespace as root.
 */
export function inNamespace(namespace: string, command: string, args: string[], user?: { uid: number; gid: number }): { command: string; args: string[] } {
  const setpriv = user ? [findBinary('setpriv', '/usr/bin:/bin') ?? 'setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--'] : [];
  return { command: ipBinary(), args: ['netns', 'exec', namespace, ...setpriv, command, ...args] };
}
