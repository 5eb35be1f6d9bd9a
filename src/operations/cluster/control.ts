// Operating one recorded process of a running cluster (restart, kill, start-one) and the rolling
// restart of the API instances (roll): each instance in turn is stopped with SIGTERM (it drains),
// started again on its port, and must answer /health with 200 there before the next one goes,
// and only while NGINX has another instance in rotation (edge.ts says why).
import { waitForAnotherInRotation } from './edge.js';
import { setPartitioned } from './netns.js';
import { running, startProcess, stopProcess } from './roles.js';
import { findProcess, readState, StateWriter, type ProcessRecord } from './state.js';

type Say = (line: string) => void;

async function start(writer: StateWriter, rec: ProcessRecord, say: Say): Promise<void> {
  await startProcess(rec, async (pid) => {
    rec.pid = pid;
    await writer.save();
  });
  say(`${rec.name}: started (pid ${rec.pid})`);
}

async function stop(writer: StateWriter, rec: ProcessRecord, how: 'graceful' | 'kill', say: Say): Promise<void> {
  const pid = rec.pid;
  await stopProcess(rec, how);
  await writer.save();
  say(`${rec.name}: ${how === 'kill' ? 'killed' : 'stopped'}${pid === null ? ' (was not running)' : ` (pid ${pid})`}`);
}

/** restart: a clean stop, then start; kill: SIGKILL, as a crash; start-one: start a process that is not running. */
export async function controlOne(dir: string, action: 'restart' | 'kill' | 'start-one', name: string, say: Say): Promise<void> {
  const writer = new StateWriter(readState(dir));
  const rec = findProcess(writer.state, name);
  if (action === 'kill') return stop(writer, rec, 'kill', say);
  if (action === 'restart') await stop(writer, rec, 'graceful', say);
  else if (running(rec)) throw new Error(`${name} already runs (pid ${rec.pid})`);
  rec.pid = null;
  return start(writer, rec, say);
}

/**
 * Each instance in turn, once NGINX has another one in rotation: SIGTERM (it drains), exited,
 * started again on its port, /health 200 there.
 */
export async function roll(dir: string, say: Say): Promise<void> {
  const writer = new StateWriter(readState(dir));
  for (const rec of writer.state.processes.filter((p) => p.role === 'api')) {
    await waitForAnotherInRotation(writer.state, rec, say);
    await stop(writer, rec, 'graceful', say);
    await start(writer, rec, say);
  }
}

/**
 * `cluster partition <member>` (cut) / `cluster heal <member>` (not cut): a member started with
 * --netns loses (or gets back) its link to the bridge; it keeps running meanwhile. Recorded as
 * the member's `partitioned` in state.json.
 */
export async function partitionOne(dir: string, name: string, cut: boolean, say: Say): Promise<void> {
  const writer = new StateWriter(readState(dir));
  const rec = findProcess(writer.state, name);
  const net = writer.state.network?.members.find((m) => m.member === name);
  if (!net) throw new Error(`${name} does not run in a network namespace of its own (only members of cluster start --ha --netns can be partitioned)`);
  setPartitioned(net, cut);
  rec.partitioned = cut;
  await writer.save();
  say(`${name}: ${cut ? `partitioned (${net.hostLink} down: ${net.address} reaches nothing, nothing reaches it)` : `healed (${net.hostLink} up)`}`);
}
