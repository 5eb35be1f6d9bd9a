// The orders a task list can be sorted in. Each is a list of keys ending in id (so that keys are
// unique) and matches one index in migrations/0001_init.sql, so a page is one index range.
import { sql, type SQL } from 'drizzle-orm';
import type { Task } from './model.js';
import { tasks } from './table.js';

export const TASK_SORTS = ['createdAt', 'dueAt', 'priority', 'updatedAt'] as const;
export type TaskSort = (typeof TASK_SORTS)[number];

/** The `sort` query parameter: a sort, '-' first for descending. */
export const SORT_PARAMS = ['createdAt', '-createdAt', 'dueAt', '-dueAt', 'priority', '-priority', 'updatedAt', '-updatedAt'] as const;
export type SortParam = (typeof SORT_PARAMS)[number];
export const DEFAULT_SORT: SortParam = '-createdAt';

export function parseSort(param: SortParam): { sort: TaskSort; descending: boolean } {
  const descending = param.startsWith('-');
  return { sort: (descending ? param.slice(1) : param) as TaskSort, descending };
}

/** One key of a sort: its SQL expression, the PostgreSQL type its cursor value is cast to, and that value of a row. */
export interface SortKey {
  expr: SQL;
  pgType: 'timestamptz' | 'uuid' | 'task_priority';
  value: (t: Task) => string;
}

const iso = (d: Date) => d.toISOString();

/** Undated tasks sort last: the due index's expression. */
export const dueKey = sql`coalesce(${tasks.dueAt}, 'infinity'::timestamptz)`;

const byId: SortKey = { expr: sql`${tasks.id}`, pgType: 'uuid', value: (t) => t.id };
const byCreated: SortKey = { expr: sql`${tasks.createdAt}`, pgType: 'timestamptz', value: (t) => iso(t.createdAt) };

export const SORT_KEYS: Record<TaskSort, readonly SortKey[]> = {
  createdAt: [byCreated, byId],
  updatedAt: [{ expr: sql`${tasks.updatedAt}`, pgType: 'timestamptz', value: (t) => iso(t.updatedAt) }, byId],
  dueAt: [{ expr: dueKey, pgType: 'timestamptz', value: (t) => (t.dueAt ? iso(t.dueAt) : 'infinity') }, byId],
  priority: [{ expr: sql`${tasks.priority}`, pgType: 'task_priority', value: (t) => t.priority }, byCreated, byId],
};
