// Stopping a cluster: every recorded process by its pid, in an order that lets each finish its
// work (NGINX first, so no new requests; the API instances drain while PostgreSQL, Redis and
// RabbitMQ are still there; those last). One that does not stop in time is killed. The Patroni
// members stop replicas first and the leader last: a leader that stops hands its key back, and a
// replica still running would take it.
import { namespacePids, removeNetwork } from './netns.js';
import { stopPid } from './processes.js';
import { memberState, restUrl } from './patroni.js';
import { running, stopProcess } from './roles.js';
import { stopOrder, type ProcessRecord, type StateWriter } from './state.js';

export async function stopAll(writer: StateWriter, say: (line: string) => void): Promise<void> {
  const failures: string[] = [];
  const stop = async (rec: ProcessRecord) => {
    const pid = rec.pid;
    if (pid === null) return;
    const was = running(rec);
    try {
      await stopProcess(rec, 'graceful');
      say(`${rec.name}: ${was ? 'stopped' : 'had exited'} (pid ${pid})`);
    } catch (err) {
      failures.push(`${rec.name}: ${err instanceof Error ? err.message : String(err)}`);
      // Whatever went wrong with the clean stop, nothing may be left running.
      await stopProcess(rec, 'kill').catch(() => undefined);
    }
  };
  // The processes of one role stop together (the instances drain side by side), roles in order.
  for (const group of stopOrder(writer.state)) {
    if (group[0]?.role === 'patroni') {
      const leaders = new Set<string>();
      for (const rec of group) if (rec.controlPort !== undefined && (await memberState(rec.urls.restUrl ?? restUrl(rec.controlPort))).role === 'leader') leaders.add(rec.name);
      await Promise.all(group.filter((r) => !leaders.has(r.name)).map(stop));
      await writer.save();
      await Promise.all(group.filter((r) => leaders.has(r.name)).map(stop));
    } else {
      await Promise.all(group.map(stop));
    }
    await writer.save();
  }
  // --netns: the namespaces, veth pairs and bridge this cluster made, once nothing runs in them.
  const network = writer.state.network;
  if (network) {
    // Whatever still runs in a member's namespace was started there by its Patroni (a postmaster
    // a crashed or confused Patroni left behind): it goes too, by pid, before the namespace.
    for (const m of network.members) {
      for (const pid of namespacePids(m.namespace)) {
        say(`${m.member}: stopping pid ${pid} left in ${m.namespace}`);
        await stopPid(pid, 'SIGTERM', 15_000);
      }
    }
    const left = await removeNetwork(network);
    if (left.length > 0) failures.push(`could not delete ${left.join(', ')}`);
    else say(`network: deleted ${network.bridge} and the namespaces ${network.members.map((m) => m.namespace).join(', ')}`);
  }
  if (failures.length > 0) say(`stopped, with problems on the way:\n  ${failures.join('\n  ')}`);
}
