// The only code that reads or writes the outbox table. Writers append in their own transaction
// (the change and its event commit or roll back together); the relay claims, marks and prunes.
import { and, asc, eq, inArray, isNotNull, isNull, lt, sql, type SQL, type WithSubquery } from 'drizzle-orm';
import type { Db } from '../infra/db/database.js';
import { outbox } from './tables.js';
import { aggregateIdOf, type DomainEvent } from '../shared/events.js';

/** A transaction (or the database) to append through: Drizzle's transaction is a Db too. */
export type Tx = Db;

export interface PendingEvent {
  id: string;
  type: string;
  payload: DomainEvent;
  attempts: number;
}

export interface OutboxStats {
  pending: number;
  /** Seconds since the oldest pending event was written; 0 when none is pending. */
  oldestPendingAgeSeconds: number;
}

const outboxRow = (aggregate: string, event: DomainEvent) => ({
  id: event.id,
  aggregate,
  aggregateId: aggregateIdOf(event),
  userId: event.userId,
  type: event.type,
  payload: event,
  traceContext: event.traceContext ?? null,
  createdAt: new Date(event.occurredAt),
});

/** Inserts the event; call it inside the transaction that makes the change. */
export async function appendEvent(tx: Tx, aggregate: string, event: DomainEvent): Promise<void> {
  await tx.insert(outbox).values(outboxRow(aggregate, event));
}

const ph = (name: string) => sql.placeholder(`event_${name}`);
// Drizzle runs a column's encoder on a placeholder's value even when it is null (a jsonb null
// would become the JSON 'null'): the one nullable column is a bare parameter, encoded here.
const rawPh = (name: string) => sql`${ph(name)}`;
const outboxPlaceholders = {
  id: ph('id'),
  aggregate: ph('aggregate'),
  aggregateId: ph('aggregate_id'),
  userId: ph('user_id'),
  type: ph('type'),
  payload: ph('payload'),
  traceContext: rawPh('trace_context'),
  createdAt: ph('created_at'),
};

/**
 * The change (data-modifying WITH queries, in order) and its event in one statement: one round
 * trip instead of BEGIN, change, event, COMMIT, and just as atomic (a statement commits or fails
 * whole; PostgreSQL runs a WITH insert exactly once even though nothing reads its result).
 * Built once, with the changes' own placeholders plus the event's (fill them with eventValues):
 * building a statement costs Drizzle more CPU than PostgreSQL spends running it. `columns` puts an
 * expression in place of a placeholder (its value then comes from the changes).
 */
export function prepareAppendWith(db: Db, changes: WithSubquery[], name: string, columns: { userId?: SQL } = {}) {
  return db
    .with(...changes)
    .insert(outbox)
    .values({ ...outboxPlaceholders, ...columns })
    .prepare(name);
}

/** The values of prepareAppendWith's event placeholders. */
export function eventValues(aggregate: string, event: DomainEvent): Record<string, unknown> {
  const row = outboxRow(aggregate, event);
  return {
    event_id: row.id,
    event_aggregate: row.aggregate,
    event_aggregate_id: row.aggregateId,
    event_user_id: row.userId,
    event_type: row.type,
    event_payload: row.payload,
    event_trace_context: row.traceContext === null ? null : JSON.stringify(row.traceContext),
    event_created_at: row.createdAt,
  };
}

export class OutboxRepository {
  constructor(private readonly db: Db) {}

  /**
   * Claims up to `limit` pending events, oldest first, and runs `publish` with them while the rows
   * stay locked (FOR UPDATE SKIP LOCKED: other relays take other rows). When `publish` resolves,
   * the rows are marked published in the same transaction; when it throws, the transaction rolls
   * back, the rows stay pending, and their attempts are counted.
   * `locking: false` reads without a transaction (PGlite: one connection, one relay, and
   * handlers that write to the same database must not wait behind the relay's transaction).
   */
  async claim(limit: number, publish: (events: PendingEvent[]) => Promise<void>, locking = true): Promise<number> {
    let claimed: PendingEvent[] = [];
    const run = async (tx: Db, lock: boolean) => {
      const q = tx
        .select({ id: outbox.id, type: outbox.type, payload: outbox.payload, attempts: outbox.attempts })
        .from(outbox)
        .where(isNull(outbox.publishedAt))
        .orderBy(asc(outbox.createdAt), asc(outbox.id))
        .limit(limit);
      claimed = lock ? await q.for('update', { skipLocked: true }) : await q;
      if (claimed.length === 0) return 0;
      await publish(claimed);
      await tx
        .update(outbox)
        .set({ publishedAt: sql`now()` })
        .where(inArray(outbox.id, claimed.map((e) => e.id)));
      return claimed.length;
    };
    try {
      return locking ? await this.db.transaction((tx) => run(tx, true)) : await run(this.db, false);
    } catch (err) {
      if (claimed.length > 0) {
        await this.db
          .update(outbox)
          .set({ attempts: sql`${outbox.attempts} + 1` })
          .where(and(inArray(outbox.id, claimed.map((e) => e.id)), isNull(outbox.publishedAt)))
          .catch(() => undefined);
      }
      throw err;
    }
  }

  /** Deletes published events older than the retention, at most `limit` of them per call. */
  async prune(retentionHours: number, limit = 1000): Promise<number> {
    const old = this.db
      .select({ id: outbox.id })
      .from(outbox)
      .where(and(isNotNull(outbox.publishedAt), lt(outbox.publishedAt, sql`now() - make_interval(hours => ${retentionHours})`)))
      .limit(limit);
    const rows = await this.db.delete(outbox).where(inArray(outbox.id, old)).returning({ id: outbox.id });
    return rows.length;
  }

  async stats(): Promise<OutboxStats> {
    const [row] = await this.db
      .select({
        pending: sql<number>`count(*)::int`,
        age: sql<number>`coalesce(extract(epoch from (now() - min(${outbox.createdAt}))), 0)::float8`,
      })
      .from(outbox)
      .where(isNull(outbox.publishedAt));
    return { pending: Number(row?.pending ?? 0), oldestPendingAgeSeconds: Math.max(0, Number(row?.age ?? 0)) };
  }

  /** Every event of one task (or account), oldest first (tests, operations). */
  async ofAggregate(aggregateId: string) {
    return this.db.select().from(outbox).where(eq(outbox.aggregateId, aggregateId)).orderBy(asc(outbox.createdAt), asc(outbox.id));
  }
}
