// Task use cases. Every call is scoped to the actor: another user's task is indistinguishable
// from a missing one.
import type { Actor } from '../../shared/actor.js';
import { decodeCursor, encodeCursor, pageOf, type Page } from '../../shared/cursor.js';
import { isForeignKeyViolation } from '../../shared/db-errors.js';
import { badRequest, forbidden, notFound, preconditionFailed, unauthorized } from '../../shared/errors.js';
import { uuidv7 } from '../../shared/ids.js';
import type { Precondition } from '../../shared/precondition.js';
import {
  keysetOf,
  parseKeyset,
  sortArity,
  type Priority,
  type Status,
  type Task,
  type TaskChanges,
  type TaskFilter,
  type TaskSort,
  type TasksRepository,
} from './repository.js';
import type { CreateTaskInput, ListTasksInput, UpdateTaskInput } from './schemas.js';


function taskNotFound(): never {
  throw notFound('Task');
}
const uniqueTags = (tags: string[]) => [...new Set(tags)];
const toDate = (v: string | null | undefined) => (v === undefined ? undefined : v === null ? null : new Date(v));

/** Told after a user's tasks changed (the response cache retires that user's entries). */
export type DataChanged = (userId: string) => Promise<void>;

export class TasksService {
  constructor(
    private readonly repo: TasksRepository,
    private readonly changed: DataChanged,
  ) {}

  async create(actor: Actor, input: CreateTaskInput): Promise<Task> {
    try {
      const task = await this.repo.insert(actor.userId, {
        id: uuidv7(),
        title: input.title,
        description: input.description ?? null,
        status: input.status ?? 'todo',
        priority: input.priority ?? 'medium',
        dueAt: toDate(input.dueAt) ?? null,
        tags: uniqueTags(input.tags ?? []),
      });
      await this.changed(actor.userId);
      return task;
    } catch (err) {
      if (isForeignKeyViolation(err)) throw unauthorized('The account no longer exists', 'account-gone');
      throw err;
    }
  }

  async get(actor: Actor, id: string): Promise<Task> {
    return (await this.repo.get(actor.userId, id)) ?? taskNotFound();
  }

  async update(actor: Actor, id: string, input: UpdateTaskInput, ifMatch: Precondition): Promise<Task> {
    const changes: TaskChanges = {
      title: input.title,
      description: input.description,
      status: input.status,
      priority: input.priority,
      dueAt: toDate(input.dueAt),
      tags: input.tags && uniqueTags(input.tags),
    };
    for (const k of Object.keys(changes) as (keyof TaskChanges)[]) if (changes[k] === undefined) delete changes[k];
    const expected = await this.expectedVersion(actor, id, ifMatch);
    const out = await this.repo.update(actor.userId, id, changes, expected);
    if (out.kind === 'updated') {
      await this.changed(actor.userId);
      return out.task;
    }
    if (out.kind === 'version-mismatch') throw preconditionFailed();
    return taskNotFound();
  }

  async delete(actor: Actor, id: string, ifMatch: Precondition): Promise<void> {
    const expected = await this.expectedVersion(actor, id, ifMatch);
    const out = await this.repo.delete(actor.userId, id, expected);
    if (out === 'version-mismatch') throw preconditionFailed();
    if (out === 'not-found') taskNotFound();
    await this.changed(actor.userId);
  }

  async list(actor: Actor, q: ListTasksInput): Promise<Page<Task>> {
    const sortParam = q.sort ?? '-createdAt';
    const descending = sortParam.startsWith('-');
    const sort = (descending ? sortParam.slice(1) : sortParam) as TaskSort;
    const limit = q.limit ?? 20;
    const after = q.cursor === undefined ? undefined : this.keyset(sortParam, sort, q.cursor);
    const filter: TaskFilter = {
      statuses: q.status ? (q.status.split(',') as Status[]) : undefined,
      priorities: q.priority ? (q.priority.split(',') as Priority[]) : undefined,
      tag: q.tag,
      dueBefore: q.dueBefore ? new Date(q.dueBefore) : undefined,
      dueAfter: q.dueAfter ? new Date(q.dueAfter) : undefined,
      q: q.q,
    };
    const rows = await this.repo.list(actor.userId, filter, sort, descending, limit + 1, after);
    return pageOf(rows, limit, (last) => encodeCursor(sortParam, keysetOf(sort, last).values));
  }

  async listAll(actor: Actor, q: { limit?: number; cursor?: string; userId?: string }) {
    if (actor.role !== 'admin') throw forbidden('Admin role required');
    const limit = q.limit ?? 20;
    const after = q.cursor === undefined ? undefined : this.keyset('admin', 'createdAt', q.cursor);
    const rows = await this.repo.listWithOwners(limit + 1, q.userId, after);
    return pageOf(rows, limit, (last) => encodeCursor('admin', keysetOf('createdAt', last).values));
  }

  private keyset(tag: string, sort: TaskSort, cursor: string) {
    const keyset = parseKeyset(sort, decodeCursor(cursor, tag, sortArity(sort)));
    if (!keyset) throw badRequest('cursor is invalid', [{ in: 'query', field: 'cursor', message: 'not a cursor returned by this API' }]);
    return keyset;
  }

  /** If-Match: '*' needs the task to exist; a list of versions needs the current one among them. */
  private async expectedVersion(actor: Actor, id: string, ifMatch: Precondition): Promise<number | undefined> {
    if (ifMatch === undefined) return undefined;
    const current = await this.get(actor, id);
    if (ifMatch === '*' || ifMatch.includes(current.version)) return current.version;
    throw preconditionFailed();
  }
}
