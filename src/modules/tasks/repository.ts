// The only code that reads or writes the tasks table. Every query names the owner's user_id,
// so it stays inside one hash partition and one index range.
import { and, arrayContains, asc, desc, eq, inArray, isNotNull, notInArray, sql, type SQL } from 'drizzle-orm';
import type { Database, Db } from '../../infra/db/database.js';
import { bucketOf } from '../../infra/shards/buckets.js';
import { BucketMovedError, bucketRow } from '../../infra/shards/ownership.js';
import { appendEvent, eventValues, prepareAppendWith } from '../../events/outbox.js';
import { isNotNullViolation } from '../../shared/db-errors.js';
import { taskEvent } from './events.js';
import { keysetCondition, type Keyset } from './keyset.js';
import type { NewTask, Owner, Status, Task, TaskChanges, TaskFilter } from './model.js';
import { dueKey, SORT_KEYS, type TaskSort } from './sorts.js';
import { taskCounts, taskOwners, tasks } from './table.js';

/**
 * A filter bound as PostgreSQL reads it. A bound just past the last millisecond of 9999 (a
 * sub-millisecond bound, rounded up) is year 10000, which toISOString writes '+010000-...' and
 * PostgreSQL refuses: written '10000-...' instead.
 */
const iso = (d: Date) => d.toISOString().replace(/^\+0*/, '');

const taskColumns = {
  id: tasks.id,
  title: tasks.title,
  description: tasks.description,
  status: tasks.status,
  priority: tasks.priority,
  dueAt: tasks.dueAt,
  tags: tasks.tags,
  createdAt: tasks.createdAt,
  updatedAt: tasks.updatedAt,
  completedAt: tasks.completedAt,
  version: tasks.version,
};

export type UpdateOutcome = { kind: 'updated'; task: Task } | { kind: 'not-found' } | { kind: 'version-mismatch' };

const placeholder = (name: string) => sql.placeholder(name);
/**
 * A placeholder without the column's encoder, which Drizzle would run on a null too (a timestamp
 * column's throws): for the nullable columns of a statement built once, encoded by the caller.
 */
const nullablePlaceholder = (name: string) => sql`${placeholder(name)}`;
const isoOrNull = (d: Date | null) => (d === null ? null : iso(d));
/** The cap when there is none: the count column is an int4. */
const INT4_MAX = 2_147_483_647;

/** A list query without filters: the shape most requests have, built once per sort and direction. */
type PlainListShape = `${TaskSort}:${'asc' | 'desc'}:${'first' | 'after'}`;

type Prepared = { execute(values: Record<string, unknown>): Promise<Task[]> };

/**
 * Where a read goes: 'routed' lets the read/write router pick a replica that has the user's
 * writes (src/infra/db/router.ts); 'primary' is for the reads of a write path (a precondition).
 */
export type ReadFrom = 'routed' | 'primary';

const buildGet = (db: Db): Prepared =>
  db
    .select(taskColumns)
    .from(tasks)
    .where(and(eq(tasks.userId, placeholder('userId')), eq(tasks.id, placeholder('id'))))
    .prepare('tasks_get');

/** The shard a repository works on: its name, and whether its writes hold their bucket (sharded). */
export interface ShardPlace {
  name: string;
  checked: boolean;
}

const UNSHARDED: ShardPlace = { name: 'main', checked: false };

export class TasksRepository {
  // Building a query with Drizzle costs about 50 µs of CPU, as much as PostgreSQL spends running
  // it; the hottest reads are built once, with placeholders, and only their values change.
  // Their names mean nothing to PostgreSQL: whether it prepares them follows DATABASE_PREPARE
  // (src/infra/db/observe.ts).
  private readonly getQuery;
  private readonly createQuery;
  /** The hot reads, per server they run on (the primary's, each replica's): see plainList. */
  private readonly replicaGets = new Map<Db, Prepared>();
  private readonly plainLists = new Map<Db, Map<PlainListShape, Prepared>>();

  /**
   * Writes and transactions go to `db` (the primary); a user's reads through `reads` (the
   * read/write router, which may pick a replica that has the user's writes), or `db` without it.
   */
  constructor(
    private readonly db: Db,
    private readonly reads?: Pick<Database, 'read'>,
    private readonly shard: ShardPlace = UNSHARDED,
  ) {
    this.getQuery = buildGet(db);
    // The create (see insert): the user's count, the row and its event in one statement.
    const counted = db.$with('counted').as(
      db
        .insert(taskCounts)
        .values({ userId: placeholder('userId'), tasks: 1 })
        .onConflictDoUpdate({
          target: taskCounts.userId,
          set: { tasks: sql`${taskCounts.tasks} + 1` },
          setWhere: sql`${taskCounts.tasks} < ${placeholder('max')} and not ${taskCounts.closed}`,
        })
        .returning({ userId: taskCounts.userId }),
    );
    const inserted = db.$with('inserted').as(
      db
        .insert(tasks)
        .values({
          userId: placeholder('userId'),
          id: placeholder('id'),
          title: placeholder('title'),
          description: nullablePlaceholder('description'),
          status: placeholder('status'),
          priority: placeholder('priority'),
          dueAt: nullablePlaceholder('dueAt'),
          tags: placeholder('tags'),
          createdAt: placeholder('createdAt'),
          updatedAt: placeholder('createdAt'),
          completedAt: nullablePlaceholder('completedAt'),
          version: 1,
        })
        .returning({ id: tasks.id }),
    );
    // The event's user_id is read from `counted`: NULL, and so a NOT NULL violation that undoes the
    // whole statement, when the cap held the count back. The task's insert comes first so that
    // the statement is named after it ("insert tasks", src/infra/db/observe.ts). On a shard, the
    // bucket's row is locked in the same statement (`held`, see hold()): no row, no event either.
    if (shard.checked) {
      const held = db.$with('held').as(bucketRow(db, placeholder('bucket')));
      this.createQuery = prepareAppendWith(db, [inserted, counted, held], 'tasks_create', {
        userId: sql`(select counted.user_id from counted, held)`,
      });
    } else {
      this.createQuery = prepareAppendWith(db, [inserted, counted], 'tasks_create', { userId: sql`(select user_id from counted)` });
    }
  }

  /**
   * On a shard, the first statement of a write's transaction: locks the owner's bucket row
   * (migrations/0010_shards.sql shard_buckets) against a move's fence, or throws BucketMovedError
   * when the shard no longer holds it. Nothing on an unsharded database.
   */
  async hold(tx: Db, owner: string): Promise<void> {
    if (!this.shard.checked) return;
    const bucket = bucketOf(owner);
    const rows = await bucketRow(tx, bucket);
    if (rows.length === 0) throw new BucketMovedError(bucket, this.shard.name);
  }

  /**
   * Inserts the task and its task.created event in one statement, counting it in the user's
   * task_counts row in the same statement; undefined when the user already holds `max` tasks or
   * the account is closed (deleted: see accountClosed).
   * Every column of the new row is known here (the defaults are version 1 and no completion
   * unless done), so the event is built before the write and the row needs no reading back.
   *
   * The cap is the upsert's condition: at the cap, `counted` returns no row, the event's user_id
   * (read from it) is NULL, and the NOT NULL constraint fails the whole statement (no row, no
   * event, no count). The count row's lock orders one user's concurrent creates, so the cap is
   * exact; other users' creates never wait on it. A closed count row fails the condition the same
   * way (src/modules/tasks/accounts.ts closes it, under that lock, before deleting the tasks).
   */
  async insert(userId: string, t: NewTask, max = Number.POSITIVE_INFINITY): Promise<Task | undefined> {
    const now = new Date();
    const task: Task = { ...t, createdAt: now, updatedAt: now, completedAt: t.status === 'done' ? now : null, version: 1 };
    try {
      await this.createQuery.execute({
        ...eventValues('task', taskEvent('task.created', userId, task, now)),
        userId,
        bucket: bucketOf(userId),
        max: Number.isFinite(max) ? max : INT4_MAX,
        id: task.id,
        title: task.title,
        description: task.description,
        status: task.status,
        priority: task.priority,
        dueAt: isoOrNull(task.dueAt),
        tags: task.tags,
        createdAt: now,
        completedAt: isoOrNull(task.completedAt),
      });
    } catch (err) {
      if (!isNotNullViolation(err)) throw err;
      // On a shard the bucket's hold may have failed too. The cap or a closed account explain a
      // refusal only if the count row says so; anything else was the bucket (fenced, or not yet
      // taken by this shard: a move's grant may land between the statement and this read).
      if (this.shard.checked) {
        const [row] = await this.db.select({ tasks: taskCounts.tasks, closed: taskCounts.closed }).from(taskCounts).where(eq(taskCounts.userId, userId));
        if (!row || (!row.closed && row.tasks < max)) throw new BucketMovedError(bucketOf(userId), this.shard.name);
      }
      return undefined;
    }
    return task;
  }

  private reading<T>(userId: string, from: ReadFrom, fn: (db: Db) => Promise<T>): Promise<T> {
    return from === 'primary' || !this.reads ? fn(this.db) : this.reads.read(userId, fn);
  }

  private getOn(db: Db): Prepared {
    if (db === this.db) return this.getQuery;
    let query = this.replicaGets.get(db);
    if (!query) this.replicaGets.set(db, (query = buildGet(db)));
    return query;
  }

  async get(userId: string, id: string, from: ReadFrom = 'routed'): Promise<Task | undefined> {
    const [row] = await this.reading(userId, from, (db) => this.getOn(db).execute({ userId, id }));
    return row;
  }

  /**
   * Applies changes if the task exists and, when given, is still at expectedVersion, and appends
   * the event in the same transaction: task.completed when the status becomes done, otherwise
   * task.updated; `changes` names the fields the write set.
   */
  async update(userId: string, id: string, changes: TaskChanges, expectedVersion?: number): Promise<UpdateOutcome> {
    const now = new Date();
    const set: Record<string, unknown> = { ...changes, updatedAt: now, version: sql`${tasks.version} + 1` };
    if (changes.status !== undefined) {
      set.completedAt = changes.status === 'done' ? sql`coalesce(${tasks.completedAt}, now())` : null;
    }
    return this.db.transaction(async (tx): Promise<UpdateOutcome> => {
      await this.hold(tx, userId);
      let before: Status | undefined;
      if (changes.status === 'done') {
        // Whether the status *becomes* done: read it under the row lock the update takes anyway.
        const [cur] = await tx
          .select({ status: tasks.status })
          .from(tasks)
          .where(and(eq(tasks.userId, userId), eq(tasks.id, id)))
          .for('update');
        before = cur?.status;
      }
      const [row] = await tx.update(tasks).set(set).where(this.match(userId, id, expectedVersion)).returning(taskColumns);
      if (row) {
        const type = changes.status === 'done' && before !== 'done' ? 'task.completed' : 'task.updated';
        await appendEvent(tx, 'task', taskEvent(type, userId, row, now, Object.keys(changes)));
        return { kind: 'updated', task: row };
      }
      return (await this.exists(userId, id, tx)) ? { kind: 'version-mismatch' } : { kind: 'not-found' };
    });
  }

  /** Deletes the task and appends task.deleted (with the task as it stood) in one transaction. */
  async delete(userId: string, id: string, expectedVersion?: number): Promise<'deleted' | 'not-found' | 'version-mismatch'> {
    return this.db.transaction(async (tx) => {
      await this.hold(tx, userId);
      const [row] = await tx.delete(tasks).where(this.match(userId, id, expectedVersion)).returning(taskColumns);
      if (row) {
        await tx
          .update(taskCounts)
          .set({ tasks: sql`${taskCounts.tasks} - 1` })
          .where(eq(taskCounts.userId, userId));
        await appendEvent(tx, 'task', taskEvent('task.deleted', userId, row, new Date()));
        return 'deleted' as const;
      }
      return (await this.exists(userId, id, tx)) ? ('version-mismatch' as const) : ('not-found' as const);
    });
  }

  async list(userId: string, filter: TaskFilter, sort: TaskSort, descending: boolean, limit: number, after?: Keyset): Promise<Task[]> {
    const keys = SORT_KEYS[sort];
    const filters = this.filters(filter).filter((f) => f !== undefined);
    if (filters.length === 0) {
      const values: Record<string, unknown> = { userId, limit };
      after?.values.forEach((v, i) => (values[`k${i}`] = v));
      return this.reading(userId, 'routed', (db) => this.plainList(db, sort, descending, after !== undefined).execute(values));
    }
    const where: (SQL | undefined)[] = [eq(tasks.userId, userId), ...filters];
    if (after) where.push(keysetCondition(keys, after.values, descending));
    return this.reading(userId, 'routed', (db) =>
      db
        .select(taskColumns)
        .from(tasks)
        .where(and(...where))
        .orderBy(...keys.map((k) => (descending ? desc(k.expr) : asc(k.expr))))
        .limit(limit),
    );
  }

  private plainList(db: Db, sort: TaskSort, descending: boolean, after: boolean): Prepared {
    const shape: PlainListShape = `${sort}:${descending ? 'desc' : 'asc'}:${after ? 'after' : 'first'}`;
    let lists = this.plainLists.get(db);
    if (!lists) this.plainLists.set(db, (lists = new Map<PlainListShape, Prepared>()));
    let query = lists.get(shape);
    if (!query) {
      const keys = SORT_KEYS[sort];
      const cursor = after ? keysetCondition(keys, keys.map((_, i) => placeholder(`k${i}`)), descending) : undefined;
      query = db
        .select(taskColumns)
        .from(tasks)
        .where(and(eq(tasks.userId, placeholder('userId')), cursor))
        .orderBy(...keys.map((k) => (descending ? desc(k.expr) : asc(k.expr))))
        .limit(placeholder('limit'))
        .prepare(`tasks_list_${shape}`);
      lists.set(shape, query);
    }
    return query;
  }

  /** Whether the account's deletion reached this module (user.deleted): it takes no more tasks. */
  async accountClosed(userId: string): Promise<boolean> {
    const [row] = await this.db.select({ closed: taskCounts.closed }).from(taskCounts).where(eq(taskCounts.userId, userId));
    return row?.closed === true;
  }

  /**
   * The owners the admin's list shows, by id, from the module's copy of the accounts (kept by
   * the account events): absent for an account not heard of yet (its user.created is on its
   * way), 'closed' for a deleted one.
   */
  async owners(ids: string[]): Promise<Map<string, Owner | 'closed'>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db
      .select({ id: taskOwners.userId, email: taskOwners.email, role: taskOwners.role, deletedAt: taskOwners.deletedAt })
      .from(taskOwners)
      .where(inArray(taskOwners.userId, ids));
    return new Map(rows.map((r) => [r.id, r.deletedAt !== null ? 'closed' : { id: r.id, email: r.email, role: r.role }]));
  }

  /**
   * Tasks of every user on this shard (or of one), newest first, with the id of the user each
   * belongs to. `without`: buckets whose rows here are a move's copy (the bucket is another
   * shard's), left out so that a read across shards sees each task once.
   */
  async listAll(limit: number, userId?: string, after?: Keyset, without: number[] = []): Promise<(Task & { userId: string })[]> {
    const keys = SORT_KEYS.createdAt;
    return this.db
      .select({ ...taskColumns, userId: tasks.userId })
      .from(tasks)
      .where(
        and(
          userId ? eq(tasks.userId, userId) : undefined,
          after ? keysetCondition(keys, after.values, true) : undefined,
          without.length > 0 ? notInArray(sql`owner_bucket(${tasks.userId})`, without) : undefined,
        ),
      )
      .orderBy(desc(tasks.createdAt), desc(tasks.id))
      .limit(limit);
  }

  private filters(f: TaskFilter): (SQL | undefined)[] {
    return [
      f.statuses ? inArray(tasks.status, f.statuses) : undefined,
      f.priorities ? inArray(tasks.priority, f.priorities) : undefined,
      f.tag !== undefined ? arrayContains(tasks.tags, [f.tag]) : undefined,
      // Written over the due index's expression so that either bound can be an index range;
      // an undated task sorts as 'infinity', which is never before a date.
      f.dueBefore ? sql`${dueKey} < ${iso(f.dueBefore)}::timestamptz` : undefined,
      f.dueAfter ? and(sql`${dueKey} >= ${iso(f.dueAfter)}::timestamptz`, isNotNull(tasks.dueAt)) : undefined,
      f.q !== undefined ? sql`"tasks"."search" @@ websearch_to_tsquery('english', ${f.q})` : undefined,
    ];
  }

  private match(userId: string, id: string, expectedVersion?: number): SQL | undefined {
    return and(
      eq(tasks.userId, userId),
      eq(tasks.id, id),
      expectedVersion === undefined ? undefined : eq(tasks.version, expectedVersion),
    );
  }

  private async exists(userId: string, id: string, db: Db = this.db): Promise<boolean> {
    const rows = await db
      .select({ id: tasks.id })
      .from(tasks)
      .where(and(eq(tasks.userId, userId), eq(tasks.id, id)));
    return rows.length > 0;
  }
}
