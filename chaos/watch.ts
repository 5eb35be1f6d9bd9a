// A crash watcher, as a supervisor would be: while the load runs, a recorded process that is down
// when no fault holds it down crashed by itself. It is recorded (name, when, the last error in
// its log) and started again once no fault is in force (an instance's start waits for the
// database: it must not queue behind a database fault's heal).
import { running } from '../src/operations/cluster/roles.js';
import { lastErrorLine, type ChaosCluster } from './cluster.js';
import type { InForce } from './schedule.js';

export interface Crash {
  name: string;
  /** ms since the epoch: when the watcher first saw it down. */
  seenAt: number;
  lastError: string;
  restartedAt?: number;
}

export function watchCrashes(cluster: ChaosCluster, inForce: InForce, say: (line: string) => void, everyMs = 2000) {
  const crashes: Crash[] = [];
  const down = new Map<string, Crash>();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      if (inForce.busy > 0) return;
      for (const rec of cluster.state().processes) {
        if (inForce.targets.has(rec.name) || down.has(rec.name)) continue;
        if (rec.pid !== null && running(rec)) continue;
        if (inForce.busy > 0) return; // a fault began meanwhile
        const crash: Crash = { name: rec.name, seenAt: Date.now(), lastError: lastErrorLine(rec.logFile) };
        say(`CRASH: ${rec.name} is down and no fault holds it down; its log: ${crash.lastError}`);
        crashes.push(crash);
        down.set(rec.name, crash);
      }
      if (down.size > 0 && inForce.busy === 0 && inForce.targets.size === 0) {
        for (const [name, crash] of down) {
          await cluster.startOne(name);
          crash.restartedAt = Date.now();
          say(`${name} started again after its crash`);
          down.delete(name);
        }
      }
    } catch (err) {
      say(`crash watcher: ${(err as Error).message}`);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), everyMs);
  return {
    crashes,
    stop: async () => {
      clearInterval(timer);
      while (busy) await new Promise((r) => setTimeout(r, 100));
    },
  };
}
