// The tasks module's side of the account events (src/shared/events.ts UserEvent): it keeps the
// little it needs of an account (the owner the admin's list shows) in task_owners, and on
// user.deleted deletes the account's tasks and closes it to new ones. Every effect is idempotent
// and ordered by the account's updatedAt, so redeliveries and late events change nothing.
import { and, eq, lte, isNull, sql } from 'drizzle-orm';
import type { Db } from '../../infra/db/database.js';
import { isUserEvent, parseUserEvent, type DomainEvent, type EventHandler, type UserEvent } from '../../shared/events.js';
import type { TasksRepository } from './repository.js';
import type { DataChanged, ShardRepositories } from './service.js';
import { taskCounts, taskOwners, tasks } from './table.js';

/** The consumer's name: its RabbitMQ queue, shared by the instances that run it. */
export const ACCOUNTS_CONSUMER = 'tasks-accounts';

export interface AccountsHandlerDeps {
  /** The account's rows live on its shard (the account is the owner of its tasks). */
  repos: ShardRepositories;
  /** After an account's tasks were deleted: retire its cached responses. */
  dataChanged: DataChanged;
}

/**
 * Each effect runs on the account's shard, holding its bucket like any write there: during a
 * move's fence the effect fails and the event is delivered again (the bus's retries).
 */
export function createAccountsHandler({ repos, dataChanged }: AccountsHandlerDeps): EventHandler {
  return async (message: DomainEvent) => {
    if (!isUserEvent(message)) return; // not an account event (a queue bound to more than user.*)
    const event = parseUserEvent(message);
    const shard = await repos.shards.of(event.userId);
    const repo = repos.on(shard);
    const db = shard.database.db;
    if (event.type === 'user.deleted') {
      await close(db, repo, event);
      await dataChanged(event.userId, shard);
    } else await keep(db, repo, event);
  };
}

/** user.created / user.updated: the copy takes the account unless it has a newer state or is closed. */
async function keep(db: Db, repo: TasksRepository, event: UserEvent): Promise<void> {
  const u = event.data.user;
  const row = { userId: u.id, email: u.email, role: u.role, updatedAt: new Date(u.updatedAt) };
  await db.transaction(async (tx) => {
    await repo.hold(tx, u.id);
    await tx
    .insert(taskOwners)
    .values(row)
    .onConflictDoUpdate({
      target: taskOwners.userId,
      set: { email: row.email, role: row.role, updatedAt: row.updatedAt },
      setWhere: and(isNull(taskOwners.deletedAt), lte(taskOwners.updatedAt, row.updatedAt)),
    });
  });
}

/**
 * user.deleted: in one transaction, close the account's count row first (the lock every create
 * of the account takes: a create running now lands before this and is deleted below, or after
 * it and fails on the closed row), then delete its tasks, and mark the copy deleted.
 */
async function close(db: Db, repo: TasksRepository, event: UserEvent): Promise<void> {
  const u = event.data.user;
  await db.transaction(async (tx) => {
    await repo.hold(tx, u.id);
    await tx
      .insert(taskCounts)
      .values({ userId: u.id, tasks: 0, closed: true })
      .onConflictDoUpdate({ target: taskCounts.userId, set: { tasks: 0, closed: true } });
    await tx.delete(tasks).where(eq(tasks.userId, u.id));
    await tx
      .insert(taskOwners)
      .values({ userId: u.id, email: u.email, role: u.role, updatedAt: new Date(u.updatedAt), deletedAt: sql`now()` })
      .onConflictDoUpdate({ target: taskOwners.userId, set: { deletedAt: sql`coalesce(${taskOwners.deletedAt}, now())` } });
  });
}
