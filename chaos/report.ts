// The figures of a chaos run: answers counted by outcome, and for each fault the window in which
// the clients saw errors (any try that was not 2xx: the edge's 502 and a dependency's 503 are
// errors, not losses). A fault's errors are those that ended between its injection and TAIL_MS
// after its heal (NGINX keeps an instance it saw fail out of rotation for fail_timeout, 30 s); with
// faults overlapping, an error counts for each fault in force.
import type { RequestEntry } from './client.js';
import type { FaultEvent } from './schedule.js';
import type { TryOutcome } from './history.js';

export const TAIL_MS = 30_000;

export interface FaultFigures {
  name: string;
  target: string;
  injectedAt: string;
  healedAt: string | null;
  /** From the first error's start to the last error's end, among the fault's errors (0: none). */
  errorWindowSeconds: number;
  errorsSeen: number;
  /** The errors by status or kind (502, 503, timeout, ECONNRESET, ...). */
  errorKinds: Record<string, number>;
  /** Seconds from the heal to the last error (negative: the errors ended before the heal). */
  lastErrorAfterHealSeconds: number | null;
  error?: string;
}

export const outcomeKey = (o: TryOutcome): string => (o.kind === 'ok' || o.kind === 'failed' ? String(o.status) : o.kind === 'timeout' ? 'timeout' : o.error);
const isError = (r: RequestEntry) => r.outcome.kind !== 'ok';
const round1 = (n: number) => Math.round(n * 10) / 10;

export function faultFigures(events: FaultEvent[], requests: RequestEntry[], tailMs = TAIL_MS): FaultFigures[] {
  const errors = requests.filter(isError);
  return events.map((ev) => {
    const until = (ev.healedAt ?? Date.now()) + tailMs;
    const mine = errors.filter((r) => r.end >= ev.injectedAt && r.end <= until);
    const errorKinds: Record<string, number> = {};
    for (const r of mine) errorKinds[outcomeKey(r.outcome)] = (errorKinds[outcomeKey(r.outcome)] ?? 0) + 1;
    const first = Math.min(...mine.map((r) => r.start));
    const last = Math.max(...mine.map((r) => r.end));
    return {
      name: ev.name,
      target: ev.target,
      injectedAt: new Date(ev.injectedAt).toISOString(),
      healedAt: ev.healedAt === undefined ? null : new Date(ev.healedAt).toISOString(),
      errorWindowSeconds: mine.length === 0 ? 0 : round1((last - Math.max(first, ev.injectedAt)) / 1000),
      errorsSeen: mine.length,
      errorKinds,
      lastErrorAfterHealSeconds: mine.length === 0 || ev.healedAt === undefined ? null : round1((last - ev.healedAt) / 1000),
      ...(ev.error ? { error: ev.error } : {}),
    };
  });
}

/** Every try counted: in total, by operation, and by outcome (status, timeout, or network error). */
export function requestFigures(requests: RequestEntry[]) {
  const byOutcome: Record<string, number> = {};
  const byOp: Record<string, { total: number; ok: number }> = {};
  let ok = 0;
  let timedOut = 0;
  let networkErrors = 0;
  for (const r of requests) {
    const key = outcomeKey(r.outcome);
    byOutcome[key] = (byOutcome[key] ?? 0) + 1;
    const op = (byOp[r.op] ??= { total: 0, ok: 0 });
    op.total += 1;
    if (r.outcome.kind === 'ok') {
      ok += 1;
      op.ok += 1;
    } else if (r.outcome.kind === 'timeout') timedOut += 1;
    else if (r.outcome.kind === 'error') networkErrors += 1;
  }
  return { total: requests.length, ok, failed: requests.length - ok - timedOut - networkErrors, timedOut, networkErrors, byOutcome, byOp };
}
