// Task use cases. Every call is scoped to the actor: another user's task is indistinguishable
// from a missing one.
import type { Actor } from '../../shared/actor.js';
import { decodeCursor, encodeCursor, pageOf, type Page } from '../../shared/cursor.js';
import { parseDateTime } from '../../shared/date-time.js';
import { isUniqueViolation } from '../../shared/db-errors.js';
import { accountGone, AppError, badRequest, forbidden, notFound, preconditionFailed, serviceUnavailable } from '../../shared/errors.js';
import { uuidv7 } from '../../shared/ids.js';
import type { Precondition } from '../../shared/precondition.js';
import { DEFAULT_TASK_PRIORITY, DEFAULT_TASK_STATUS } from '../../shared/task-model.js';
import { keysetChecks, keysetOf, type Keyset } from './keyset.js';
import type { OwnedTask, Owner, Priority, Status, Task, TaskChanges, TaskFilter } from './model.js';
import { BucketMovedError } from '../../infra/shards/ownership.js';
import { mergeSorted, scatter } from '../../infra/shards/scatter.js';
import type { Shard, TaskShards } from '../../infra/shards/set.js';
import { TasksRepository } from './repository.js';
import type { CreateTaskInput, ListTasksInput, UpdateTaskInput } from './schemas.js';
import { DEFAULT_SORT, parseSort, type TaskSort } from './sorts.js';

function taskNotFound(): never {
  throw notFound('Task');
}
const uniqueTags = (tags: string[]) => [...new Set(tags)];
/** A validated date-time (src/shared/date-time.ts decided it is one), as the instant it names. */
function instantOf(v: string, rounding: 'floor' | 'ceil' = 'floor'): Date {
  const instant = parseDateTime(v, rounding);
  if (instant === undefined) throw badRequest(`${JSON.stringify(v)} is not a date-time`);
  return instant;
}
const toDate = (v: string | null | undefined) => (v === undefined ? undefined : v === null ? null : instantOf(v));

/**
 * Told after a user's tasks changed on a shard: the write's position is recorded for the user's
 * reads there, and the response cache retires that user's entries.
 */
export type DataChanged = (userId: string, shard: Shard) => Promise<void>;

/** The admin's list, newest first: createdAt descending, then id descending (as PostgreSQL orders uuids). */
const newestFirst = (a: Task, b: Task) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** A bucket being moved: its writes wait a moment (src/infra/shards/move.ts fences it briefly). */
const bucketMoving = () => serviceUnavailable("The account's data is being moved between shards; retry in a moment", 1);

/** One repository per shard, each over the shard's own pools. */
export class ShardRepositories {
  private readonly repos = new Map<string, TasksRepository>();

  constructor(
    readonly shards: TaskShards,
    repositoryOf: (shard: Shard) => TasksRepository = (shard) => new TasksRepository(shard.database.db, shard.database, shard),
  ) {
    for (const shard of shards.all) this.repos.set(shard.name, repositoryOf(shard));
  }

  on(shard: Shard): TasksRepository {
    return this.repos.get(shard.name)!;
  }

  /** The repository of the owner's shard. */
  async of(owner: string): Promise<TasksRepository> {
    return this.on(await this.shards.of(owner));
  }

  /**
   * Runs a write on the owner's shard. When that shard no longer holds the owner's bucket (a move
   * flipped the map meanwhile), the map is reloaded and the write runs once more where it points
   * now; while the bucket is fenced (no shard takes it yet), a 503 with Retry-After.
   */
  async write<T>(owner: string, fn: (repo: TasksRepository, shard: Shard) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const shard = await this.shards.of(owner);
      try {
        return await fn(this.on(shard), shard);
      } catch (err) {
        if (!(err instanceof BucketMovedError)) throw err;
        await this.shards.reload();
        if (attempt >= 1 || (await this.shards.of(owner)).name === shard.name) {
          this.shards.writeMoved('fenced');
          throw bucketMoving();
        }
        this.shards.writeMoved('rerouted');
      }
    }
  }
}

export class TasksService {
  constructor(
    private readonly repos: ShardRepositories,
    private readonly changed: DataChanged,
    /** Tasks one user may hold (TASKS_PER_USER_MAX). */
    private readonly maxPerUser = Number.POSITIVE_INFINITY,
    /** How long the admin's list waits for each shard. */
    private readonly scatterTimeoutMs = 5000,
  ) {}

  /**
   * `id`, when given, names the task (an idempotent retry's: src/http/idempotency.ts). A task of
   * the user with that id already there is the one an earlier run of the same request made, and
   * is answered as created: the retry does not make a second one.
   */
  async create(actor: Actor, input: CreateTaskInput, id: string = uuidv7()): Promise<Task> {
    return this.repos.write(actor.userId, (repo, shard) => this.createOn(repo, shard, actor, input, id));
  }

  private async createOn(repo: TasksRepository, shard: Shard, actor: Actor, input: CreateTaskInput, id: string): Promise<Task> {
    try {
      const task = await repo.insert(
        actor.userId,
        {
          id,
          title: input.title,
          description: input.description ?? null,
          status: input.status ?? DEFAULT_TASK_STATUS,
          priority: input.priority ?? DEFAULT_TASK_PRIORITY,
          dueAt: toDate(input.dueAt) ?? null,
          tags: uniqueTags(input.tags ?? []),
        },
        this.maxPerUser,
      );
      if (!task) {
        if (await repo.accountClosed(actor.userId)) throw accountGone();
        throw new AppError(409, 'task-limit', 'Conflict', `At most ${this.maxPerUser} tasks per user; delete some first`);
      }
      await this.changed(actor.userId, shard);
      return task;
    } catch (err) {
      if (isUniqueViolation(err)) {
        const made = await repo.get(actor.userId, id, 'primary');
        if (made) return made;
      }
      throw err;
    }
  }

  async get(actor: Actor, id: string): Promise<Task> {
    return (await (await this.repos.of(actor.userId)).get(actor.userId, id)) ?? (await this.missing(actor));
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
    return this.repos.write(actor.userId, async (repo, shard) => {
      const out = await repo.update(actor.userId, id, changes, expected);
      if (out.kind === 'updated') {
        await this.changed(actor.userId, shard);
        return out.task;
      }
      if (out.kind === 'version-mismatch') throw preconditionFailed();
      return this.missing(actor);
    });
  }

  async delete(actor: Actor, id: string, ifMatch: Precondition): Promise<void> {
    const expected = await this.expectedVersion(actor, id, ifMatch);
    await this.repos.write(actor.userId, async (repo, shard) => {
      const out = await repo.delete(actor.userId, id, expected);
      if (out === 'version-mismatch') throw preconditionFailed();
      if (out === 'not-found') await this.missing(actor);
      await this.changed(actor.userId, shard);
    });
  }

  async list(actor: Actor, q: ListTasksInput): Promise<Page<Task>> {
    const sortParam = q.sort ?? DEFAULT_SORT;
    const { sort, descending } = parseSort(sortParam);
    const limit = q.limit ?? 20;
    const after = q.cursor === undefined ? undefined : this.keyset(sortParam, sort, q.cursor);
    const filter: TaskFilter = {
      statuses: q.status ? (q.status.split(',') as Status[]) : undefined,
      priorities: q.priority ? (q.priority.split(',') as Priority[]) : undefined,
      tag: q.tag,
      // Bounds for millisecond values: sub-millisecond digits round up (src/shared/date-time.ts).
      dueBefore: q.dueBefore ? instantOf(q.dueBefore, 'ceil') : undefined,
      dueAfter: q.dueAfter ? instantOf(q.dueAfter, 'ceil') : undefined,
      q: q.q,
    };
    const rows = await (await this.repos.of(actor.userId)).list(actor.userId, filter, sort, descending, limit + 1, after);
    if (rows.length === 0) await this.ensureAccount(actor);
    return pageOf(rows, limit, (last) => encodeCursor(sortParam, keysetOf(sort, last).values));
  }

  async listAll(actor: Actor, q: { limit?: number; cursor?: string; userId?: string }): Promise<Page<OwnedTask>> {
    if (actor.role !== 'admin') throw forbidden('Admin role required');
    const limit = q.limit ?? 20;
    const after = q.cursor === undefined ? undefined : this.keyset('admin', 'createdAt', q.cursor);
    const page = pageOf(await this.listAllRows(limit + 1, q.userId, after), limit, (last) => encodeCursor('admin', keysetOf('createdAt', last).values));
    // The admin's own account is looked up with the owners: an admin deleted meanwhile sees nothing.
    const owners = await this.owners([...new Set([actor.userId, ...page.data.map((r) => r.userId)])]);
    if (owners.get(actor.userId) === 'closed') throw accountGone();
    // A task of a closed account is being deleted with it (user.deleted): left out; the next page
    // still starts after the last row read. An owner not heard of yet shows its id alone.
    const data = page.data.flatMap(({ userId, ...task }): OwnedTask[] => {
      const owner = owners.get(userId);
      if (owner === 'closed') return [];
      return [{ ...task, owner: owner ?? { id: userId, email: null, role: null } }];
    });
    return { data, nextCursor: page.nextCursor };
  }

  /**
   * One user's tasks from their shard; every user's from every shard at once, merged newest
   * first (a shard that does not answer in time fails the read: a page missing a shard's rows
   * would make its cursor skip them).
   */
  private async listAllRows(limit: number, userId: string | undefined, after: Keyset | undefined): Promise<(Task & { userId: string })[]> {
    if (userId !== undefined) return (await this.repos.of(userId)).listAll(limit, userId, after);
    const { shards } = this.repos;
    if (shards.all.length === 1) return this.repos.on(shards.all[0]!).listAll(limit, undefined, after);
    const pages = await scatter(shards.all, this.scatterTimeoutMs, (shard) => this.repos.on(shard).listAll(limit, undefined, after, shards.copiesOn(shard.name)));
    return mergeSorted(pages, newestFirst, limit);
  }

  /** The owners of these ids, each from the copy of the accounts on its own shard. */
  private async owners(ids: string[]): Promise<Map<string, Owner | 'closed'>> {
    const byShard = new Map<Shard, string[]>();
    for (const id of ids) {
      const shard = await this.repos.shards.of(id);
      byShard.set(shard, [...(byShard.get(shard) ?? []), id]);
    }
    const found = await Promise.all([...byShard].map(([shard, of]) => this.repos.on(shard).owners(of)));
    return new Map(found.flatMap((m) => [...m]));
  }

  /**
   * A 401 'account-gone' when the caller's account no longer exists (their token outlived it):
   * when its deletion has reached this module (user.deleted closed it).
   */
  private async ensureAccount(actor: Actor): Promise<void> {
    if (await (await this.repos.of(actor.userId)).accountClosed(actor.userId)) throw accountGone();
  }

  /** Nothing of the caller's by that id: a 404, or the 401 of ensureAccount when that is why. */
  private async missing(actor: Actor): Promise<never> {
    await this.ensureAccount(actor);
    return taskNotFound();
  }

  private keyset(tag: string, sort: TaskSort, cursor: string): Keyset {
    return { values: decodeCursor(cursor, tag, keysetChecks(sort)) };
  }

  /** If-Match: '*' needs the task to exist; a list of versions needs the current one among them. */
  private async expectedVersion(actor: Actor, id: string, ifMatch: Precondition): Promise<number | undefined> {
    if (ifMatch === undefined) return undefined;
    // On the primary: a write's precondition is checked against the latest version.
    const current = (await (await this.repos.of(actor.userId)).get(actor.userId, id, 'primary')) ?? (await this.missing(actor));
    if (ifMatch === '*' || ifMatch.includes(current.version)) return current.version;
    throw preconditionFailed();
  }
}
