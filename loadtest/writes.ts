// The lost-write check (Jepsen's set checker, simplified): every write a client attempts is
// recorded with what it chose (its Idempotency-Key and a unique title) and what it learned (the
// id of an acknowledged create, or nothing). After the faults stop, the rows that exist are
// compared with the record: an acknowledged write missing, a write present twice, or a row no
// one attempted are each a broken promise. An attempt that was never acknowledged (a timeout, a
// connection cut) may be present once or absent: both are correct.

export interface Attempt {
  /** The Idempotency-Key the client sent with every try of this write. */
  key: string;
  /** Unique per attempt: how a stored row is matched to the attempt that made it. */
  title: string;
  userId: string;
  /** The id the API answered with (2xx), once a try was acknowledged. */
  ackedId?: string;
  tries: number;
  /** What the last try that was not acknowledged ended with (status or network error). */
  lastFailure?: string;
}

export interface StoredRow {
  id: string;
  userId: string;
  title: string;
}

export interface WriteCheck {
  attempted: number;
  acknowledged: number;
  /** Acknowledged writes whose row is not there (must be 0). */
  ackedMissing: Attempt[];
  /** Titles stored more than once: a retry applied twice (must be 0). */
  duplicates: { title: string; ids: string[] }[];
  /** Rows whose title no attempt of this run made, among the run's users (must be 0). */
  neverAttempted: StoredRow[];
  /** Acknowledged with one id, stored with another (must be 0). */
  wrongId: { attempt: Attempt; storedId: string }[];
  /** Not acknowledged and stored: allowed (the write happened, the answer was lost). */
  unacknowledgedPresent: number;
  /** Not acknowledged and not stored: allowed. */
  unacknowledgedAbsent: number;
}

export class WriteLog {
  private readonly byKey = new Map<string, Attempt>();

  attempt(key: string, title: string, userId: string): Attempt {
    const existing = this.byKey.get(key);
    if (existing) {
      existing.tries += 1;
      return existing;
    }
    const a: Attempt = { key, title, userId, tries: 1 };
    this.byKey.set(key, a);
    return a;
  }

  ack(key: string, id: string): void {
    const a = this.byKey.get(key);
    if (!a) throw new Error(`ack for a key never attempted: ${key}`);
    a.ackedId = id;
    a.lastFailure = undefined;
  }

  fail(key: string, why: string): void {
    const a = this.byKey.get(key);
    if (a && a.ackedId === undefined) a.lastFailure = why;
  }

  attempts(): Attempt[] {
    return [...this.byKey.values()];
  }

  users(): Set<string> {
    return new Set(this.attempts().map((a) => a.userId));
  }
}

/**
 * Compares the record with the rows stored for the run's users. `isRunTitle` tells a title this
 * run's writers would make (rows made before the run, e.g. fixtures, are not the run's).
 */
export function checkWrites(log: WriteLog, rows: StoredRow[], isRunTitle: (title: string) => boolean): WriteCheck {
  const attempts = log.attempts();
  const byTitle = new Map<string, StoredRow[]>();
  for (const r of rows) {
    if (!isRunTitle(r.title)) continue;
    const list = byTitle.get(r.title) ?? [];
    list.push(r);
    byTitle.set(r.title, list);
  }
  const attemptedTitles = new Set(attempts.map((a) => a.title));
  const out: WriteCheck = {
    attempted: attempts.length,
    acknowledged: 0,
    ackedMissing: [],
    duplicates: [],
    neverAttempted: [],
    wrongId: [],
    unacknowledgedPresent: 0,
    unacknowledgedAbsent: 0,
  };
  for (const a of attempts) {
    const stored = (byTitle.get(a.title) ?? []).filter((r) => r.userId === a.userId);
    if (a.ackedId !== undefined) {
      out.acknowledged += 1;
      if (stored.length === 0) out.ackedMissing.push(a);
      else if (!stored.some((r) => r.id === a.ackedId)) out.wrongId.push({ attempt: a, storedId: stored[0]!.id });
    } else if (stored.length > 0) out.unacknowledgedPresent += 1;
    else out.unacknowledgedAbsent += 1;
  }
  for (const [title, list] of byTitle) {
    if (list.length > 1) out.duplicates.push({ title, ids: list.map((r) => r.id) });
    if (!attemptedTitles.has(title)) out.neverAttempted.push(...list);
  }
  return out;
}

/** The figures that must be 0, in one line for a test's message or a report. */
export function summarizeCheck(c: WriteCheck): string {
  return (
    `${c.attempted} attempted, ${c.acknowledged} acknowledged; acknowledged missing ${c.ackedMissing.length}, ` +
    `duplicates ${c.duplicates.length}, never attempted ${c.neverAttempted.length}, wrong id ${c.wrongId.length}; ` +
    `unacknowledged present ${c.unacknowledgedPresent}, absent ${c.unacknowledgedAbsent}`
  );
}
