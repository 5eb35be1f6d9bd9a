// An in-memory stand-in for the TasksRepository methods TasksService calls. It keeps tasks per
// user, honours expected versions, and lists in keyset order the way the SQL does (sort keys, then
// id; 'infinity' for an undated task), so that pages and cursors can be walked end to end.
// Every call's arguments are recorded for the tests to inspect.
import { keysetOf, type Keyset } from '../../../src/modules/tasks/keyset.js';
import type { NewTask, Owner, Task, TaskChanges, TaskFilter } from '../../../src/modules/tasks/model.js';
import type { TasksRepository, UpdateOutcome } from '../../../src/modules/tasks/repository.js';
import type { TaskSort } from '../../../src/modules/tasks/sorts.js';
import { TASK_PRIORITIES } from '../../../src/shared/task-model.js';

export type TasksRepositoryPort = Pick<TasksRepository, 'insert' | 'get' | 'update' | 'delete' | 'list' | 'listAll' | 'owners' | 'accountClosed'>;

interface Stored {
  userId: string;
  task: Task;
}

export interface ListCall {
  userId: string;
  filter: TaskFilter;
  sort: TaskSort;
  descending: boolean;
  limit: number;
  after: Keyset | undefined;
}

/** Comparable text of a keyset value: priorities by declaration order; ISO text and ids sort as they are. */
const comparable = (sort: TaskSort, values: string[]) =>
  values.map((v, i) => (sort === 'priority' && i === 0 ? String(TASK_PRIORITIES.indexOf(v as Task['priority'])) : v));

function compare(a: string[], b: string[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i]! < b[i]!) return -1;
    if (a[i]! > b[i]!) return 1;
  }
  return 0;
}

export class FakeTasksRepository implements TasksRepositoryPort {
  readonly rows = new Map<string, Stored>();
  readonly inserts: { userId: string; task: NewTask }[] = [];
  readonly updates: { userId: string; id: string; changes: TaskChanges; expectedVersion: number | undefined }[] = [];
  readonly deletes: { userId: string; id: string; expectedVersion: number | undefined }[] = [];
  readonly lists: ListCall[] = [];
  readonly listAlls: { limit: number; userId: string | undefined; after: Keyset | undefined }[] = [];
  /** Thrown by the next insert (a driver error, say). */
  insertError: Error | undefined;
  /** Runs just before an update or delete looks at the row: another writer getting there first. */
  beforeWrite: (() => void) | undefined;

  /** The module's copy of the accounts: an owner, 'closed' (deleted), or absent (not heard of yet). */
  readonly accounts = new Map<string, Owner | 'closed'>();
  /** The ids of every owners() call, and [id] of every accountClosed() call, in order. */
  ownerLookups: string[][] = [];

  async owners(ids: string[]): Promise<Map<string, Owner | 'closed'>> {
    this.ownerLookups.push(ids);
    return new Map(ids.flatMap((id) => (this.accounts.has(id) ? [[id, this.accounts.get(id)!] as const] : [])));
  }

  async accountClosed(userId: string): Promise<boolean> {
    this.ownerLookups.push([userId]);
    return this.accounts.get(userId) === 'closed';
  }

  /** Puts a task straight into the store (no service call), as another request would have. */
  seed(userId: string, task: Task): Task {
    this.rows.set(task.id, { userId, task });
    return task;
  }

  async insert(userId: string, t: NewTask): Promise<Task | undefined> {
    this.inserts.push({ userId, task: t });
    if (this.insertError) throw this.insertError;
    if (this.accounts.get(userId) === 'closed') return undefined; // the closed count row's condition
    const now = new Date();
    const task: Task = { ...t, createdAt: now, updatedAt: now, completedAt: t.status === 'done' ? now : null, version: 1 };
    this.rows.set(task.id, { userId, task });
    return task;
  }

  async get(userId: string, id: string): Promise<Task | undefined> {
    const row = this.rows.get(id);
    return row && row.userId === userId ? row.task : undefined;
  }

  async update(userId: string, id: string, changes: TaskChanges, expectedVersion?: number): Promise<UpdateOutcome> {
    this.updates.push({ userId, id, changes, expectedVersion });
    this.beforeWrite?.();
    const row = this.rows.get(id);
    if (!row || row.userId !== userId) return { kind: 'not-found' };
    if (expectedVersion !== undefined && row.task.version !== expectedVersion) return { kind: 'version-mismatch' };
    row.task = { ...row.task, ...changes, updatedAt: new Date(), version: row.task.version + 1 };
    return { kind: 'updated', task: row.task };
  }

  async delete(userId: string, id: string, expectedVersion?: number): Promise<'deleted' | 'not-found' | 'version-mismatch'> {
    this.deletes.push({ userId, id, expectedVersion });
    this.beforeWrite?.();
    const row = this.rows.get(id);
    if (!row || row.userId !== userId) return 'not-found';
    if (expectedVersion !== undefined && row.task.version !== expectedVersion) return 'version-mismatch';
    this.rows.delete(id);
    return 'deleted';
  }

  async list(userId: string, filter: TaskFilter, sort: TaskSort, descending: boolean, limit: number, after?: Keyset): Promise<Task[]> {
    this.lists.push({ userId, filter, sort, descending, limit, after });
    const mine = [...this.rows.values()].filter((r) => r.userId === userId).map((r) => r.task);
    const matching = mine.filter(
      (t) =>
        (!filter.statuses || filter.statuses.includes(t.status)) &&
        (!filter.priorities || filter.priorities.includes(t.priority)) &&
        (filter.tag === undefined || t.tags.includes(filter.tag)),
    );
    return this.page(matching, sort, descending, limit, after);
  }

  async listAll(limit: number, userId?: string, after?: Keyset): Promise<(Task & { userId: string })[]> {
    this.listAlls.push({ limit, userId, after });
    const rows = [...this.rows.values()].filter((r) => userId === undefined || r.userId === userId);
    const byTask = new Map(rows.map((r) => [r.task, r.userId]));
    return this.page([...byTask.keys()], 'createdAt', true, limit, after).map((t) => ({ ...t, userId: byTask.get(t)! }));
  }

  private page(tasks: Task[], sort: TaskSort, descending: boolean, limit: number, after: Keyset | undefined): Task[] {
    const key = (t: Task) => comparable(sort, keysetOf(sort, t).values);
    const sign = descending ? -1 : 1;
    const from = after && comparable(sort, after.values);
    return tasks
      .filter((t) => from === undefined || sign * compare(key(t), from) > 0)
      .sort((a, b) => sign * compare(key(a), key(b)))
      .slice(0, limit);
  }
}
