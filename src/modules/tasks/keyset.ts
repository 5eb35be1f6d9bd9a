// Keyset pagination: a cursor carries the sort keys' values of the last row shown, and the next
// page is the rows after that position as one row comparison, which the sort's index answers
// directly (a page deep in the list costs what the first page costs).
import { sql, type SQL } from 'drizzle-orm';
import { isUuid } from '../../shared/ids.js';
import { TASK_PRIORITIES } from '../../shared/task-model.js';
import type { Task } from './model.js';
import { SORT_KEYS, type SortKey, type TaskSort } from './sorts.js';

/** A position in a sort order: the sort keys' values of the last row seen, as text. */
export interface Keyset {
  values: string[];
}

export const keysetOf = (sort: TaskSort, t: Task): Keyset => ({ values: SORT_KEYS[sort].map((k) => k.value(t)) });

/** Exactly what toISOString() writes, for an instant PostgreSQL accepts (Date.parse takes 2024-02-30). */
function isIsoInstant(v: string): boolean {
  const d = new Date(v);
  const year = d.getUTCFullYear();
  return year >= 1 && year <= 9999 && d.toISOString() === v;
}

const VALID_VALUE: Record<SortKey['pgType'], (v: string) => boolean> = {
  timestamptz: (v) => v === 'infinity' || isIsoInstant(v),
  uuid: isUuid,
  task_priority: (v) => (TASK_PRIORITIES as readonly string[]).includes(v),
};

/** What each of a sort's cursor values must look like before it may reach an SQL cast. */
export const keysetChecks = (sort: TaskSort): ((v: string) => boolean)[] => SORT_KEYS[sort].map((k) => VALID_VALUE[k.pgType]);

/** The rows after `values` in the sort: (k1, k2, ...) > (v1, v2, ...), or < when descending. */
export function keysetCondition(keys: readonly SortKey[], values: unknown[], descending: boolean): SQL {
  const lhs = sql.join(
    keys.map((k) => k.expr),
    sql`, `,
  );
  const rhs = sql.join(
    keys.map((k, i) => sql`${values[i]}::${sql.raw(k.pgType)}`),
    sql`, `,
  );
  return descending ? sql`(${lhs}) < (${rhs})` : sql`(${lhs}) > (${rhs})`;
}
