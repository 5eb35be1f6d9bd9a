// Task use cases (src/modules/tasks/service.ts) over an in-memory repository: defaults, ownership,
// If-Match preconditions, list parameters and cursors, the admin's list. No database.
import { beforeEach, describe, expect, it } from 'vitest';
import type { TasksRepository } from '../../src/modules/tasks/repository.js';
import type { Database } from '../../src/infra/db/database.js';
import { singleShard } from '../../src/infra/shards/set.js';
import { ShardRepositories, TasksService } from '../../src/modules/tasks/service.js';
import type { Owner } from '../../src/modules/tasks/model.js';
import type { Actor } from '../../src/shared/actor.js';
import { encodeCursor } from '../../src/shared/cursor.js';
import { isUuid } from '../../src/shared/ids.js';
import { FakeTasksRepository } from './support/fake-tasks-repository.js';
import { makeTask, testId } from './support/tasks.js';
import { rejection } from './support/errors.js';

const alice: Actor = { userId: '0192f7a0-0000-7000-8000-00000000a11c', role: 'user' };
const bob: Actor = { userId: '0192f7a0-0000-7000-8000-000000000b0b', role: 'user' };
const admin: Actor = { userId: '0192f7a0-0000-7000-8000-0000000ad000', role: 'admin' };
const ownerOf = (a: Actor, email: string): Owner => ({ id: a.userId, email, role: a.role });

let repo: FakeTasksRepository;
let changed: string[];
let owners: Map<string, Owner | 'closed'>;
let service: TasksService;
/** The owner and account lookups the service made (the fake records them). */
const lookups = () => repo.ownerLookups;

beforeEach(() => {
  repo = new FakeTasksRepository();
  changed = [];
  owners = repo.accounts;
  owners.set(alice.userId, ownerOf(alice, 'alice@example.com'));
  owners.set(bob.userId, ownerOf(bob, 'bob@example.com'));
  owners.set(admin.userId, ownerOf(admin, 'admin@example.com'));
  service = new TasksService(
    // TasksService takes the class; the fake has its public methods only (see the report).
    new ShardRepositories(singleShard({} as Database), () => repo as unknown as TasksRepository),
    async (userId) => {
      changed.push(userId);
    },
  );
});

/** n tasks of a user, created one minute apart (oldest first). */
function seedTasks(actor: Actor, n: number): ReturnType<typeof makeTask>[] {
  return Array.from({ length: n }, (_, i) =>
    repo.seed(actor.userId, makeTask({ title: `task ${i}`, createdAt: new Date(Date.UTC(2024, 2, 1, 10, i)), updatedAt: new Date(Date.UTC(2024, 2, 1, 10, i)) })),
  );
}

describe('create', () => {
  it('fills the defaults, stores the task for the caller, and tells the cache', async () => {
    const task = await service.create(alice, { title: 'Write the report' });
    expect(task).toMatchObject({ title: 'Write the report', status: 'todo', priority: 'medium', description: null, dueAt: null, tags: [], version: 1 });
    expect(repo.inserts).toHaveLength(1);
    const { userId, task: stored } = repo.inserts[0]!;
    expect(userId).toBe(alice.userId);
    expect(stored).toEqual({ id: task.id, title: 'Write the report', description: null, status: 'todo', priority: 'medium', dueAt: null, tags: [] });
    expect(changed).toEqual([alice.userId]);
  });

  it('gives every task a new UUIDv7', async () => {
    const a = await service.create(alice, { title: 'a' });
    const b = await service.create(alice, { title: 'b' });
    for (const id of [a.id, b.id]) {
      expect(isUuid(id)).toBe(true);
      expect(id[14]).toBe('7');
    }
    expect(a.id).not.toBe(b.id);
  });

  it('keeps what is given: description, status, priority, due date as a Date, tags de-duplicated in order', async () => {
    await service.create(alice, {
      title: 'Plan',
      description: 'the quarter',
      status: 'in_progress',
      priority: 'urgent',
      dueAt: '2024-04-01T09:00:00.000Z',
      tags: ['work', 'q2', 'work', 'q2', 'home'],
    });
    expect(repo.inserts[0]!.task).toMatchObject({
      description: 'the quarter',
      status: 'in_progress',
      priority: 'urgent',
      dueAt: new Date('2024-04-01T09:00:00.000Z'),
      tags: ['work', 'q2', 'home'],
    });
  });

  it("an account deleted meanwhile (its deletion closed it: the insert refuses) is a 401 'account-gone', and nothing changed", async () => {
    owners.set(alice.userId, 'closed');
    const err = await rejection(service.create(alice, { title: 'x' }));
    expect(err).toMatchObject({ status: 401, code: 'account-gone' });
    expect(changed).toEqual([]);
  });

  it('any other repository error passes through unchanged', async () => {
    const boom = Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
    repo.insertError = boom;
    await expect(service.create(alice, { title: 'x' })).rejects.toBe(boom);
    expect(changed).toEqual([]);
  });
});

describe('get', () => {
  it("returns the caller's task", async () => {
    const t = repo.seed(alice.userId, makeTask());
    await expect(service.get(alice, t.id)).resolves.toEqual(t);
  });

  it("a missing task and another user's task are the same 404", async () => {
    const t = repo.seed(alice.userId, makeTask());
    for (const [actor, id] of [[alice, testId()], [bob, t.id]] as const) {
      const err = await rejection(service.get(actor, id));
      expect(err).toMatchObject({ status: 404, code: 'not-found', message: 'Task not found' });
    }
  });
});

describe('update', () => {
  it('without If-Match: applies only the fields given, and tells the cache', async () => {
    const t = repo.seed(alice.userId, makeTask({ title: 'old', priority: 'low', tags: ['a'] }));
    const out = await service.update(alice, t.id, { title: 'new', tags: ['x', 'y', 'x'] }, undefined);
    expect(out).toMatchObject({ id: t.id, title: 'new', priority: 'low', tags: ['x', 'y'], version: 2 });
    // the repository names the changed fields in the event: only these two
    expect(repo.updates[0]).toEqual({ userId: alice.userId, id: t.id, changes: { title: 'new', tags: ['x', 'y'] }, expectedVersion: undefined });
    expect(changed).toEqual([alice.userId]);
  });

  it('dueAt: a date string becomes a Date, null clears it, absent leaves it', async () => {
    const t = repo.seed(alice.userId, makeTask({ dueAt: new Date('2024-05-01T00:00:00.000Z') }));
    await service.update(alice, t.id, { dueAt: '2024-06-01T12:00:00.000Z' }, undefined);
    expect(repo.updates[0]!.changes).toEqual({ dueAt: new Date('2024-06-01T12:00:00.000Z') });
    await service.update(alice, t.id, { dueAt: null }, undefined);
    expect(repo.updates[1]!.changes).toEqual({ dueAt: null });
    await service.update(alice, t.id, { description: null }, undefined);
    expect(repo.updates[2]!.changes).toEqual({ description: null });
    expect((await service.get(alice, t.id)).dueAt).toBeNull();
  });

  it('If-Match naming the current version (among others) applies, expecting that version', async () => {
    const t = repo.seed(alice.userId, makeTask({ version: 4 }));
    const out = await service.update(alice, t.id, { status: 'done' }, [3, 4]);
    expect(out).toMatchObject({ status: 'done', version: 5 });
    expect(repo.updates[0]!.expectedVersion).toBe(4);
    expect(changed).toEqual([alice.userId]);
  });

  it('If-Match of a stale version: 412, nothing written', async () => {
    const t = repo.seed(alice.userId, makeTask({ version: 4 }));
    for (const ifMatch of [[3], [1, 2, 5], []]) {
      const err = await rejection(service.update(alice, t.id, { title: 'x' }, ifMatch));
      expect(err, JSON.stringify(ifMatch)).toMatchObject({ status: 412, code: 'precondition-failed' });
    }
    expect(repo.updates).toEqual([]);
    expect(await service.get(alice, t.id)).toMatchObject({ title: t.title, version: 4 });
    expect(changed).toEqual([]);
  });

  it('a write between the version check and the update: 412', async () => {
    const t = repo.seed(alice.userId, makeTask({ version: 1 }));
    repo.beforeWrite = () => void (repo.rows.get(t.id)!.task.version = 2);
    const err = await rejection(service.update(alice, t.id, { title: 'x' }, [1]));
    expect(err.status).toBe(412);
    expect(changed).toEqual([]);
  });

  it("If-Match '*': applies to an existing task, 404 for a missing one or another user's", async () => {
    const t = repo.seed(alice.userId, makeTask({ version: 7 }));
    await expect(service.update(alice, t.id, { title: 'x' }, '*')).resolves.toMatchObject({ title: 'x', version: 8 });
    expect(repo.updates[0]!.expectedVersion).toBe(7);
    expect((await rejection(service.update(alice, testId(), { title: 'x' }, '*'))).status).toBe(404);
    expect((await rejection(service.update(bob, t.id, { title: 'y' }, '*'))).status).toBe(404);
    expect(changed).toEqual([alice.userId]);
  });

  it("without If-Match: 404 for a missing task or another user's", async () => {
    const t = repo.seed(alice.userId, makeTask());
    expect((await rejection(service.update(bob, t.id, { title: 'mine now' }, undefined))).status).toBe(404);
    expect((await rejection(service.update(alice, testId(), { title: 'x' }, undefined))).status).toBe(404);
    expect((await service.get(alice, t.id)).title).toBe(t.title);
    expect(changed).toEqual([]);
  });
});

describe('delete', () => {
  it('removes the task and tells the cache', async () => {
    const t = repo.seed(alice.userId, makeTask());
    await service.delete(alice, t.id, undefined);
    expect(repo.rows.has(t.id)).toBe(false);
    expect(changed).toEqual([alice.userId]);
  });

  it('If-Match of the current version deletes; of a stale one is 412 and keeps the task', async () => {
    const t = repo.seed(alice.userId, makeTask({ version: 2 }));
    expect((await rejection(service.delete(alice, t.id, [1]))).status).toBe(412);
    expect(repo.rows.has(t.id)).toBe(true);
    expect(repo.deletes).toEqual([]);
    await service.delete(alice, t.id, [2]);
    expect(repo.deletes).toEqual([{ userId: alice.userId, id: t.id, expectedVersion: 2 }]);
    expect(repo.rows.has(t.id)).toBe(false);
    expect(changed).toEqual([alice.userId]);
  });

  it('a write between the version check and the delete: 412', async () => {
    const t = repo.seed(alice.userId, makeTask({ version: 1 }));
    repo.beforeWrite = () => void (repo.rows.get(t.id)!.task.version = 2);
    expect((await rejection(service.delete(alice, t.id, [1]))).status).toBe(412);
    expect(repo.rows.has(t.id)).toBe(true);
  });

  it("404 for a missing task or another user's, with or without If-Match '*'", async () => {
    const t = repo.seed(alice.userId, makeTask());
    for (const ifMatch of [undefined, '*'] as const) {
      expect((await rejection(service.delete(alice, testId(), ifMatch))).status).toBe(404);
      expect((await rejection(service.delete(bob, t.id, ifMatch))).status).toBe(404);
    }
    expect(repo.rows.has(t.id)).toBe(true);
    expect(changed).toEqual([]);
  });
});

describe('list', () => {
  it('defaults: newest first, 20 per page (asks for 21), no filter, from the start', async () => {
    await service.list(alice, {});
    expect(repo.lists).toHaveLength(1);
    const call = repo.lists[0]!;
    expect(call).toMatchObject({ userId: alice.userId, sort: 'createdAt', descending: true, limit: 21, after: undefined });
    expect(Object.values(call.filter).filter((v) => v !== undefined)).toEqual([]);
  });

  it('passes the parsed sort, limit + 1 and filters: comma lists split, dates as Dates', async () => {
    await service.list(alice, {
      sort: '-dueAt',
      limit: 5,
      status: 'todo,in_progress',
      priority: 'high,urgent',
      tag: 'work',
      dueBefore: '2024-05-01T00:00:00.000Z',
      dueAfter: '2024-04-01T00:00:00Z',
      q: 'quarterly report',
    });
    expect(repo.lists[0]).toEqual({
      userId: alice.userId,
      sort: 'dueAt',
      descending: true,
      limit: 6,
      after: undefined,
      filter: {
        statuses: ['todo', 'in_progress'],
        priorities: ['high', 'urgent'],
        tag: 'work',
        dueBefore: new Date('2024-05-01T00:00:00.000Z'),
        dueAfter: new Date('2024-04-01T00:00:00.000Z'),
        q: 'quarterly report',
      },
    });
    await service.list(alice, { sort: 'priority', status: 'done' });
    expect(repo.lists[1]).toMatchObject({ sort: 'priority', descending: false, limit: 21, filter: { statuses: ['done'] } });
  });

  it('only the caller’s tasks', async () => {
    seedTasks(bob, 3);
    const mine = seedTasks(alice, 2);
    const page = await service.list(alice, {});
    expect(page.data.map((t) => t.id)).toEqual([mine[1]!.id, mine[0]!.id]);
  });

  it('a next cursor only when there is another page; following it walks every task once, in order', async () => {
    const tasks = seedTasks(alice, 5);
    const seen: string[] = [];
    let cursor: string | undefined;
    const pages: number[] = [];
    do {
      const page = await service.list(alice, { limit: 2, sort: 'createdAt', cursor });
      pages.push(page.data.length);
      seen.push(...page.data.map((t) => t.title));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined && pages.length < 10);
    expect(pages).toEqual([2, 2, 1]);
    expect(seen).toEqual(tasks.map((t) => t.title));
    // the second request carried the last shown row's position
    expect(repo.lists[1]!.after).toEqual({ values: [tasks[1]!.createdAt.toISOString(), tasks[1]!.id] });
  });

  it('exactly limit tasks: one page, no cursor', async () => {
    seedTasks(alice, 3);
    const page = await service.list(alice, { limit: 3 });
    expect(page.data).toHaveLength(3);
    expect(page.nextCursor).toBeNull();
  });

  it('walks by priority, then creation, with undated tasks last under dueAt', async () => {
    const low = repo.seed(alice.userId, makeTask({ title: 'low', priority: 'low', dueAt: null }));
    const urgent = repo.seed(alice.userId, makeTask({ title: 'urgent', priority: 'urgent', dueAt: new Date('2024-03-05T00:00:00.000Z') }));
    const medium = repo.seed(alice.userId, makeTask({ title: 'medium', priority: 'medium', dueAt: new Date('2024-03-02T00:00:00.000Z') }));
    const walk = async (sort: 'priority' | '-priority' | 'dueAt') => {
      const titles: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await service.list(alice, { limit: 1, sort, cursor });
        titles.push(...page.data.map((t) => t.title));
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined && titles.length < 10);
      return titles;
    };
    expect(await walk('priority')).toEqual([low.title, medium.title, urgent.title]);
    expect(await walk('-priority')).toEqual([urgent.title, medium.title, low.title]);
    expect(await walk('dueAt')).toEqual([medium.title, urgent.title, low.title]);
  });

  it('a bad cursor is a 400 naming cursor, and the repository is not asked', async () => {
    seedTasks(alice, 3);
    const { nextCursor } = await service.list(alice, { limit: 1, sort: 'createdAt' });
    repo.lists.length = 0;
    const bad = [
      'garbage',
      nextCursor!, // made for 'createdAt', used with '-createdAt'
      encodeCursor('-createdAt', ['2024-02-30T00:00:00.000Z', testId()]),
      encodeCursor('-createdAt', ['2024-03-01T10:00:00.000Z', 'not-a-uuid']),
      encodeCursor('-createdAt', ['2024-03-01T10:00:00.000Z']),
      encodeCursor('admin', ['2024-03-01T10:00:00.000Z', testId()]),
    ];
    for (const cursor of bad) {
      const err = await rejection(service.list(alice, { cursor }));
      expect(err.status, cursor).toBe(400);
      expect(err.errors, cursor).toEqual([{ in: 'query', field: 'cursor', message: expect.any(String) }]);
    }
    expect(repo.lists).toEqual([]);
  });
});

describe('listAll (admin)', () => {
  it('refuses a non-admin with 403 before reading anything', async () => {
    seedTasks(alice, 1);
    const err = await rejection(service.listAll(alice, {}));
    expect(err).toMatchObject({ status: 403, code: 'forbidden' });
    expect(repo.listAlls).toEqual([]);
    expect(lookups()).toEqual([]);
  });

  it("every user's tasks, newest first, each with its owner (and no bare userId)", async () => {
    const [a0, a1] = seedTasks(alice, 2);
    const b = repo.seed(bob.userId, makeTask({ title: 'bob', createdAt: new Date(Date.UTC(2024, 2, 1, 10, 30)) }));
    const page = await service.listAll(admin, {});
    expect(page.data.map((t) => [t.id, t.owner.email])).toEqual([
      [b.id, 'bob@example.com'],
      [a1!.id, 'alice@example.com'],
      [a0!.id, 'alice@example.com'],
    ]);
    expect(page.data[0]).toEqual({ ...b, owner: { id: bob.userId, email: 'bob@example.com', role: 'user' } });
    expect(page.data[0]).not.toHaveProperty('userId');
    expect(page.nextCursor).toBeNull();
    expect(repo.listAlls[0]).toEqual({ limit: 21, userId: undefined, after: undefined });
    // each owner looked up once, with the admin's own account
    expect(lookups()).toHaveLength(1);
    expect([...lookups()[0]!].sort()).toEqual([admin.userId, alice.userId, bob.userId].sort());
  });

  it('passes the userId filter on', async () => {
    seedTasks(alice, 1);
    seedTasks(bob, 1);
    const page = await service.listAll(admin, { userId: bob.userId, limit: 5 });
    expect(repo.listAlls[0]).toEqual({ limit: 6, userId: bob.userId, after: undefined });
    expect(page.data.map((t) => t.owner.id)).toEqual([bob.userId]);
  });

  it("shows a task whose owner is not known yet (the account's user.created is on its way) with the owner's id alone", async () => {
    const early = repo.seed(bob.userId, makeTask());
    owners.delete(bob.userId);
    const page = await service.listAll(admin, {});
    expect(page.data).toEqual([{ ...early, owner: { id: bob.userId, email: null, role: null } }]);
  });

  it('drops a task whose owner is gone (the account was deleted between the two reads)', async () => {
    seedTasks(alice, 2);
    const orphan = repo.seed(bob.userId, makeTask({ createdAt: new Date(Date.UTC(2024, 2, 1, 9, 0)) }));
    owners.set(bob.userId, 'closed');
    const page = await service.listAll(admin, {});
    expect(page.data).toHaveLength(2);
    expect(page.data.map((t) => t.id)).not.toContain(orphan.id);
    expect(page.data.every((t) => t.owner.id === alice.userId)).toBe(true);
  });

  it("pages with its own cursors; a user list's cursor is a 400 naming cursor", async () => {
    const tasks = seedTasks(alice, 3);
    const first = await service.listAll(admin, { limit: 2 });
    expect(first.data.map((t) => t.id)).toEqual([tasks[2]!.id, tasks[1]!.id]);
    expect(first.nextCursor).not.toBeNull();
    const second = await service.listAll(admin, { limit: 2, cursor: first.nextCursor! });
    expect(second.data.map((t) => t.id)).toEqual([tasks[0]!.id]);
    expect(second.nextCursor).toBeNull();

    const { nextCursor: userCursor } = await service.list(alice, { limit: 1 });
    for (const cursor of [userCursor!, 'garbage']) {
      const err = await rejection(service.listAll(admin, { cursor }));
      expect(err.status).toBe(400);
      expect(err.errors?.map((e) => e.field)).toEqual(['cursor']);
    }
    // and an admin cursor is no good for a user's list
    expect((await rejection(service.list(alice, { cursor: first.nextCursor! }))).status).toBe(400);
  });

  it('a page from which a task was dropped (owner gone) still leads to the next page', async () => {
    const [a, b, c] = seedTasks(alice, 3);
    const orphan = repo.seed(bob.userId, makeTask({ createdAt: new Date((a!.createdAt.getTime() + b!.createdAt.getTime()) / 2) }));
    owners.set(bob.userId, 'closed');
    // Newest first: c, b, orphan, a. The first page reads c and b; the second the orphan (dropped) and a.
    const first = await service.listAll(admin, { limit: 2 });
    expect(first.data.map((t) => t.id)).toEqual([c!.id, b!.id]);
    const second = await service.listAll(admin, { limit: 2, cursor: first.nextCursor! });
    expect(second.data.map((t) => t.id)).toEqual([a!.id]);
    expect(second.data.map((t) => t.id)).not.toContain(orphan.id);
    expect(second.nextCursor).toBeNull();
  });
});

describe("a valid token whose account is gone: 401 'account-gone' wherever nothing of the caller's is found", () => {
  beforeEach(() => {
    owners.set(alice.userId, 'closed');
  });

  it('get, update and delete of any id', async () => {
    const t = repo.seed(bob.userId, makeTask());
    for (const id of [t.id, testId()]) {
      expect(await rejection(service.get(alice, id))).toMatchObject({ status: 401, code: 'account-gone' });
      expect(await rejection(service.update(alice, id, { title: 'x' }, undefined))).toMatchObject({ status: 401, code: 'account-gone' });
      expect(await rejection(service.update(alice, id, { title: 'x' }, '*'))).toMatchObject({ status: 401, code: 'account-gone' });
      expect(await rejection(service.delete(alice, id, undefined))).toMatchObject({ status: 401, code: 'account-gone' });
    }
    expect(changed).toEqual([]);
  });

  it('a list that comes back empty', async () => {
    expect(await rejection(service.list(alice, {}))).toMatchObject({ status: 401, code: 'account-gone' });
  });

  it("the admin's list, when the admin's own account is gone", async () => {
    seedTasks(bob, 1);
    owners.set(admin.userId, 'closed');
    expect(await rejection(service.listAll(admin, {}))).toMatchObject({ status: 401, code: 'account-gone' });
  });

  it('asks only when nothing was found: an existing account still gets its 404 and its empty page', async () => {
    owners.set(alice.userId, ownerOf(alice, 'alice@example.com'));
    expect(await rejection(service.get(alice, testId()))).toMatchObject({ status: 404 });
    await expect(service.list(alice, {})).resolves.toEqual({ data: [], nextCursor: null });
    expect(lookups()).toEqual([[alice.userId], [alice.userId]]);
    seedTasks(alice, 1);
    repo.ownerLookups = [];
    await service.list(alice, {});
    expect(lookups()).toEqual([]);
  });
});
