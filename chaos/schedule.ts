// Runs the fault table in rounds while the load runs: each round injects every applicable fault
// once, in turn, and every second fault starts halfway through the previous one when the two may
// overlap (neither takes what the other's heal needs), so faults come both alone and together.
// Each fault's injection and heal times are recorded; a heal that fails is tried again, and what
// is still down after the schedule is started by the run (ChaosCluster.healAll).
import { mayOverlap, type FaultContext, type FaultRow } from './faults.js';

export interface FaultEvent {
  name: string;
  target: string;
  /** ms since the epoch. */
  injectedAt: number;
  healedAt?: number;
  error?: string;
}

/** What the faults hold down now: a crash watcher ignores these (and everything while one is being injected or healed). */
export interface InForce {
  busy: number;
  targets: Set<string>;
}

export interface ScheduleOptions {
  inForce: InForce;
  rows: FaultRow[];
  /** Rounds to run at least; more start while `until` leaves room. */
  minRounds: number;
  /** No new round starts after this (ms since the epoch); a started round finishes. */
  until: number;
  /** Pause between faults that do not overlap. */
  gapMs: number;
  context: Omit<FaultContext, 'round'>;
  signal: AbortSignal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The order of a round: the table's, rotated by the round so that other pairs overlap. */
export const roundOrder = <T>(rows: T[], round: number): T[] => rows.map((_, i) => rows[(i + round) % rows.length]!);

export async function runSchedule(o: ScheduleOptions): Promise<FaultEvent[]> {
  const events: FaultEvent[] = [];
  const injections = new Map<string, number>();
  const say = o.context.say;

  async function one(row: FaultRow, onInjected: () => void): Promise<void> {
    const round = injections.get(row.name) ?? 0;
    injections.set(row.name, round + 1);
    const ctx: FaultContext = { ...o.context, round };
    const ev: FaultEvent = { name: row.name, target: '', injectedAt: Date.now() };
    events.push(ev);
    let heal: (() => Promise<void>) | undefined;
    o.inForce.busy += 1;
    try {
      const injected = await row.inject(ctx);
      ev.injectedAt = Date.now();
      ev.target = injected.target;
      o.inForce.targets.add(injected.target);
      heal = injected.heal;
      say(`fault ${row.name}: injected on ${injected.target}`);
    } catch (err) {
      ev.error = `inject: ${(err as Error).message}`;
      say(`fault ${row.name}: ${ev.error}`);
      onInjected();
      return;
    } finally {
      o.inForce.busy -= 1;
    }
    onInjected();
    await sleep(row.holdMs(ctx));
    o.inForce.busy += 1;
    try {
      for (let attempt = 1; attempt <= 3; attempt++) {
        try {
          await heal();
          ev.healedAt = Date.now();
          say(`fault ${row.name}: healed ${ev.target} after ${((ev.healedAt - ev.injectedAt) / 1000).toFixed(1)} s`);
          return;
        } catch (err) {
          ev.error = `heal (try ${attempt}): ${(err as Error).message}`;
          say(`fault ${row.name}: ${ev.error}`);
          await sleep(2000);
        }
      }
    } finally {
      o.inForce.targets.delete(ev.target);
      o.inForce.busy -= 1;
    }
  }

  for (let round = 0; round < o.minRounds || Date.now() < o.until; round++) {
    if (o.signal.aborted) break;
    const running: { row: FaultRow; done: Promise<void> }[] = [];
    let prev: { row: FaultRow; injected: Promise<void>; startedAt: number } | undefined;
    const order = roundOrder(o.rows, round);
    for (let i = 0; i < order.length && !o.signal.aborted; i++) {
      const row = order[i]!;
      const overlap = i % 2 === 1 && prev !== undefined && running.every((r) => mayOverlap(r.row, row));
      if (overlap) {
        // Halfway through the previous fault's hold.
        await prev!.injected;
        await sleep(Math.max(0, prev!.row.holdMs({ ...o.context, round }) / 2));
      } else {
        await Promise.all(running.map((r) => r.done));
        running.length = 0;
        if (i > 0 || round > 0) await sleep(o.gapMs);
      }
      if (o.signal.aborted) break;
      let injected!: () => void;
      const injectedP = new Promise<void>((r) => (injected = r));
      const done = one(row, injected);
      running.push({ row, done });
      prev = { row, injected: injectedP, startedAt: Date.now() };
    }
    await Promise.all(running.map((r) => r.done));
  }
  return events;
}
