// The only code that reads or writes event_retries: the in-process bus's retry schedule and its
// dead letters (migrations/0004_event_retries.sql). Rows are claimed with a lease (FOR UPDATE
// SKIP LOCKED, then next_attempt_at moved to the lease's end), so processes sharing one PostgreSQL
// never run the same retry at once, and one that dies mid-retry leaves the row to the next lease.
import { and, asc, eq, inArray, isNotNull, isNull, lte, sql } from 'drizzle-orm';
import type { Db } from '../infra/db/database.js';
import { eventRetries } from './tables.js';
import type { DomainEvent } from '../shared/events.js';

export interface DueRetry {
  consumer: string;
  event: DomainEvent;
  /** Deliveries so far; the one about to run is attempts + 1. */
  attempts: number;
}

export interface DeadLetterRow {
  consumer: string;
  eventId: string;
  type: string;
  attempts: number;
  reason: 'failed' | 'poison';
  lastError: string;
  deadAt: Date;
}

const MAX_ERROR_LENGTH = 500;

export class EventRetries {
  constructor(private readonly db: Db) {}

  /**
   * Records a failed delivery: the next attempt is due at `nextAttemptAt`, or, with `dead`, the
   * event is a dead letter. Attempts never go down (a redelivered batch can record the same
   * failure twice).
   */
  async recordFailure(
    consumer: string,
    event: DomainEvent,
    attempts: number,
    error: string,
    next: { at: Date } | { dead: 'failed' | 'poison' },
  ): Promise<void> {
    const dead = 'dead' in next;
    const values = {
      consumer,
      eventId: event.id,
      type: event.type,
      payload: event,
      attempts,
      lastError: error.slice(0, MAX_ERROR_LENGTH),
      nextAttemptAt: dead ? new Date() : next.at,
      reason: dead ? next.dead : ('failed' as const),
      deadAt: dead ? new Date() : null,
    };
    await this.db
      .insert(eventRetries)
      .values(values)
      .onConflictDoUpdate({
        target: [eventRetries.consumer, eventRetries.eventId],
        set: {
          attempts: sql`greatest(${eventRetries.attempts}, excluded.attempts)`,
          lastError: values.lastError,
          nextAttemptAt: values.nextAttemptAt,
          reason: values.reason,
          deadAt: values.deadAt,
        },
      });
  }

  /**
   * Claims up to `limit` due retries of these consumers (the ones this process runs), leasing
   * each until `leaseUntil` (its next_attempt_at moves on).
   */
  async claimDue(consumers: string[], limit: number, leaseUntil: Date): Promise<DueRetry[]> {
    if (consumers.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const due = await tx
        .select({ consumer: eventRetries.consumer, eventId: eventRetries.eventId, payload: eventRetries.payload, attempts: eventRetries.attempts })
        .from(eventRetries)
        .where(and(isNull(eventRetries.deadAt), inArray(eventRetries.consumer, consumers), lte(eventRetries.nextAttemptAt, sql`now()`)))
        .orderBy(asc(eventRetries.nextAttemptAt))
        .limit(limit)
        .for('update', { skipLocked: true });
      for (const d of due) {
        await tx
          .update(eventRetries)
          .set({ nextAttemptAt: leaseUntil })
          .where(and(eq(eventRetries.consumer, d.consumer), eq(eventRetries.eventId, d.eventId)));
      }
      return due.map((d) => ({ consumer: d.consumer, event: d.payload, attempts: d.attempts }));
    });
  }

  /** The retry worked: the event is done for this consumer. */
  async succeeded(consumer: string, eventId: string): Promise<void> {
    await this.db.delete(eventRetries).where(and(eq(eventRetries.consumer, consumer), eq(eventRetries.eventId, eventId)));
  }

  /** A consumer's dead letters, oldest first. */
  async dead(consumer: string, limit: number): Promise<DeadLetterRow[]> {
    const rows = await this.db
      .select()
      .from(eventRetries)
      .where(and(eq(eventRetries.consumer, consumer), isNotNull(eventRetries.deadAt)))
      .orderBy(asc(eventRetries.deadAt), asc(eventRetries.eventId))
      .limit(limit);
    return rows.map((r) => ({
      consumer: r.consumer,
      eventId: r.eventId,
      type: r.type,
      attempts: r.attempts,
      reason: r.reason,
      lastError: r.lastError,
      deadAt: r.deadAt ?? r.createdAt,
    }));
  }

  /** Gives up to `limit` of a consumer's dead letters a fresh set of attempts, due now. */
  async replay(consumer: string, limit: number): Promise<DeadLetterRow[]> {
    const letters = await this.dead(consumer, limit);
    if (letters.length === 0) return letters;
    await this.db
      .update(eventRetries)
      .set({ deadAt: null, attempts: 1, reason: 'failed', nextAttemptAt: sql`now()` })
      .where(and(eq(eventRetries.consumer, consumer), inArray(eventRetries.eventId, letters.map((l) => l.eventId)), isNotNull(eventRetries.deadAt)));
    return letters;
  }
}
