// The chaos run's checker (Jepsen's set checker, with a register check for updates): compares what
// the clients attempted and were told (history.ts) with what the system holds once it settled.
//
// - a create that was acknowledged must be stored, under the id it was acknowledged with, and its
//   task.created must have reached the notifications consumer;
// - no marker may be stored twice (a retry with the same Idempotency-Key applied twice), and no
//   stored row may carry a marker no client attempted;
// - a task's description must be the value of its last acknowledged update, or of an update
//   attempted after it (an unacknowledged write may have happened or not); with no acknowledged
//   update, the initial value or any attempted one; any other value was never written by anyone;
// - an attempt never acknowledged may be stored once or not at all: both are correct.
// Pure: no I/O, so a synthetic history proves it can fail (test/unit/chaos-checker.test.ts).
import type { ClientHistory, CreateRecord, FinalState, StoredTask, UpdateRecord } from './history.js';

export type MissingWrite =
  | { kind: 'create'; marker: string; id: string }
  | { kind: 'update'; taskId: string; allowed: string[]; found: string | null };

export type Phantom = { kind: 'row'; id: string; title: string } | { kind: 'update'; taskId: string; found: string | null };

export interface CheckResult {
  creates: { attempted: number; acknowledged: number; unacknowledgedPresent: number; unacknowledgedAbsent: number };
  updates: { attempted: number; acknowledged: number };
  acknowledgedMissing: MissingWrite[];
  eventsMissing: { marker: string; id: string }[];
  /** Stored tasks of the run that were never acknowledged and whose task.created did not arrive either (a commit without its event). */
  unacknowledgedWithoutEvent: { marker: string; id: string }[];
  phantoms: Phantom[];
  duplicates: { marker: string; ids: string[] }[];
  hungReads: number;
}

export interface CheckOptions {
  /** A task's description when it was created (the run creates tasks without one). */
  initialDescription?: string | null;
}

const groupBy = <T, K>(items: T[], key: (t: T) => K): Map<K, T[]> => {
  const out = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
};

/** The descriptions a task may hold at the end, given its updates in order; undefined: anything attempted or the initial value. */
export function allowedValues(updates: UpdateRecord[], initial: string | null): (string | null)[] {
  const ordered = [...updates].sort((a, b) => a.seq - b.seq);
  let lastAck = -1;
  ordered.forEach((u, i) => {
    if (u.acked) lastAck = i;
  });
  if (lastAck < 0) return [initial, ...ordered.map((u) => u.value)];
  return ordered.slice(lastAck).map((u) => u.value);
}

function checkUpdates(updates: UpdateRecord[], rowsById: Map<string, StoredTask>, initial: string | null, out: CheckResult): void {
  for (const [taskId, list] of groupBy(updates, (u) => u.taskId)) {
    const row = rowsById.get(taskId);
    // A task that is not there: its create's check reports it (an update never makes a task).
    if (!row) continue;
    const allowed = allowedValues(list, initial);
    if (allowed.includes(row.description)) continue;
    const everWritten = new Set<string | null>([initial, ...list.map((u) => u.value)]);
    if (!everWritten.has(row.description)) out.phantoms.push({ kind: 'update', taskId, found: row.description });
    else out.acknowledgedMissing.push({ kind: 'update', taskId, allowed: allowed.map(String), found: row.description });
  }
}

export function check(history: ClientHistory, final: FinalState, opts: CheckOptions = {}): CheckResult {
  const initial = opts.initialDescription ?? null;
  const out: CheckResult = {
    creates: { attempted: history.creates.length, acknowledged: 0, unacknowledgedPresent: 0, unacknowledgedAbsent: 0 },
    updates: { attempted: history.updates.length, acknowledged: history.updates.filter((u) => u.acked).length },
    acknowledgedMissing: [],
    eventsMissing: [],
    unacknowledgedWithoutEvent: [],
    phantoms: [],
    duplicates: [],
    hungReads: history.hungReads,
  };
  const rowsById = new Map(final.rows.map((r) => [r.id, r]));
  const rowsByMarker = groupBy(final.rows, (r) => r.title);
  const attempted = new Map<string, CreateRecord>(history.creates.map((c) => [c.marker, c]));

  for (const c of history.creates) {
    const stored = (rowsByMarker.get(c.marker) ?? []).filter((r) => r.userId === c.userId);
    if (c.ackedId !== undefined) {
      out.creates.acknowledged += 1;
      const row = rowsById.get(c.ackedId);
      if (!row || row.title !== c.marker || row.userId !== c.userId) out.acknowledgedMissing.push({ kind: 'create', marker: c.marker, id: c.ackedId });
      else if (!final.createdDelivered.has(row.id)) out.eventsMissing.push({ marker: c.marker, id: row.id });
    } else if (stored.length > 0) {
      out.creates.unacknowledgedPresent += 1;
      for (const r of stored) if (!final.createdDelivered.has(r.id)) out.unacknowledgedWithoutEvent.push({ marker: c.marker, id: r.id });
    } else {
      out.creates.unacknowledgedAbsent += 1;
    }
  }
  for (const [marker, list] of rowsByMarker) {
    const a = attempted.get(marker);
    const mine = list.filter((r) => a !== undefined && r.userId === a.userId);
    if (mine.length > 1) out.duplicates.push({ marker, ids: mine.map((r) => r.id) });
    for (const r of list) if (!mine.includes(r)) out.phantoms.push({ kind: 'row', id: r.id, title: r.title });
  }
  checkUpdates(history.updates, rowsById, initial, out);
  return out;
}

/** The counts that must all be 0 for the run to pass. */
export function lossCounts(r: CheckResult) {
  return {
    acknowledgedMissing: r.acknowledgedMissing.length,
    eventsMissing: r.eventsMissing.length,
    phantoms: r.phantoms.length,
    duplicates: r.duplicates.length,
    hungReads: r.hungReads,
  };
}

export const passed = (r: CheckResult) => Object.values(lossCounts(r)).every((n) => n === 0);
