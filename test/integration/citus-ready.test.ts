// Citus-ready: what lives on a user's shard (tasks, task_counts, task_owners and the outbox rows
// the tasks module writes) is keyed by user_id everywhere, so that the same schema and the same
// statements work behind the application's shard router and as Citus distributed tables
// (`create_distributed_table('tasks', 'user_id')`, docs/scaling.md):
//  - every statement the tasks repository and its account-events consumer send names one user:
//    `user_id = $n` in its WHERE (a top-level AND condition), the user's id as the INSERT's
//    user_id value, user_id in its ON CONFLICT target; none moves a row to another user. The
//    statements are captured as sent (postgres.js `debug`, cross-checked with the production
//    query observer) while every repository method runs, and read by test/helpers/captured-sql.ts;
//  - every primary key and unique index of those tables includes user_id, and no foreign key
//    leaves a user's data (read from the catalog of the migrated database).
// What does not meet the rule is listed below with the reason, never skipped: a listed exception
// that stops happening fails the test too, so the lists stay true.
import { getTableName, is, sql } from 'drizzle-orm';
import { PgTable } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRepository } from '../../src/events/outbox.js';
import { createAccountsHandler } from '../../src/modules/tasks/accounts.js';
import { keysetOf } from '../../src/modules/tasks/keyset.js';
import type { NewTask, Task, TaskFilter } from '../../src/modules/tasks/model.js';
import { TasksRepository } from '../../src/modules/tasks/repository.js';
import { TASK_SORTS } from '../../src/modules/tasks/sorts.js';
import * as taskTables from '../../src/modules/tasks/table.js';
import { USER_EVENT_TYPES, type UserEvent, type UserEventType } from '../../src/shared/events.js';
import { uuidv7 } from '../../src/shared/ids.js';
import { openCapturingDb, readStatement, type CapturedStatement, type SqlCapture, type StatementPart, type UserKey } from '../helpers/captured-sql.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import type { Database } from '../../src/infra/db/database.js';
import { singleShard } from '../../src/infra/shards/set.js';
import { ShardRepositories } from '../../src/modules/tasks/service.js';

/** The tables of a user's shard: the tasks module's own, and the outbox its writes append to. */
const SHARDED = ['tasks', 'task_counts', 'task_owners', 'outbox'] as const;
/** tasks is hash-partitioned by user_id (migrations/0001_init.sql): its partitions are the same data. */
const isSharded = (table: string) => (SHARDED as readonly string[]).includes(table) || /^tasks_p\d+$/.test(table);
/**
 * The application router's own table on each shard (the buckets it holds, which every write
 * locks): keyed by bucket, not by user, and not used on the Citus path, where the coordinator
 * routes and no bucket moves through the application.
 */
const ROUTER_TABLES = ['shard_buckets'];

/**
 * Statements on a sharded table that do not name one user, each with why it may. The admin's
 * cross-user list is the one scatter query of the API; the owners it shows are looked up by a
 * set of users; the relay's housekeeping runs per shard.
 */
interface Exception {
  scenario: RegExp;
  table: string;
  key: 'none' | 'in';
  why: string;
}
const SCATTER: Exception[] = [
  {
    scenario: /^listAll, every user/,
    table: 'tasks',
    key: 'none',
    why:
      "the admin's cross-user list (GET /v1/admin/tasks without userId): the one legitimate scatter query. " +
      'Behind a shard router it becomes a scatter-gather (each shard\'s newest page by (created_at, id), merged, cut at the limit); ' +
      'on Citus a multi-shard query',
  },
  {
    scenario: /^owners/,
    table: 'task_owners',
    key: 'in',
    why:
      "the owners shown beside a page of the admin's list: user_id IN (the page's owners and the admin): keyed by user_id, " +
      'but by several users, so one lookup per shard that holds them',
  },
  {
    scenario: /^relay:/,
    table: 'outbox',
    key: 'none',
    why:
      "the outbox relay's claim, mark, count and prune (src/events/outbox.ts): every pending event of the shard, oldest first; " +
      'the relay runs once per shard (its outbox is a table of that shard). On Citus these would be multi-shard statements, ' +
      'where SELECT ... FOR UPDATE works in single-shard queries only: the relay changes shape there (docs/scaling.md, The outbox relay)',
  },
];

/**
 * Statements that name their user but need another shape on Citus (docs/scaling.md): the create
 * reads the outbox row's user_id from the count row it upserted (`(select user_id from counted)`,
 * the cap check: NULL, so a NOT NULL violation, when the cap held the count back), and Citus does
 * not take subqueries in an INSERT's VALUES.
 */
const CITUS_REWRITES: { scenario: RegExp; table: string; why: string }[] = [
  {
    scenario: /^insert/,
    table: 'outbox',
    why: "the create's event takes user_id from the upserted task_counts row (the per-user cap); Citus refuses subqueries within INSERT ... VALUES",
  },
];

/** Unique keys that lack user_id, with why (docs/scaling.md, The outbox). */
const KEY_EXCEPTIONS: { index: string; why: string }[] = [
  {
    index: 'outbox_pkey',
    why:
      'outbox is keyed by the event id alone (migrations/0002_outbox.sql). Behind the shard router it is a table of each shard and ' +
      'UUIDv7 ids do not collide, so nothing changes; to distribute it by user_id on Citus its primary key becomes (user_id, id) ' +
      '(the migration in docs/scaling.md), together with the relay marking by (user_id, id)',
  },
];

interface Scenario {
  name: string;
  /** The users a statement may name: the acting user (a set for the admin's owners). */
  users: string[];
  run: () => Promise<unknown>;
  /** Sends nothing (an empty owners lookup). */
  silent?: boolean;
}

interface Finding {
  scenario: string;
  statement: CapturedStatement;
  part: StatementPart;
  table: string;
}

const describeKey = (k: UserKey) => (k.kind === 'none' ? 'no user key' : `${k.kind} ${k.values.join(', ')}`);
const show = (f: Finding, why: string) => `${f.scenario}: ${f.part.where} ${f.part.verb} on ${f.table} (${describeKey(f.part.key)}): ${why}\n      ${f.statement.text}`;

/**
 * What is wrong with a part of a statement on a sharded table, or undefined: `code` says which
 * listed exception may excuse it ('none' and 'several': SCATTER; 'derived': CITUS_REWRITES;
 * the others nothing).
 */
function violation(f: Finding, users: string[]): { code: 'problem' | 'conflict' | 'none' | 'stranger' | 'several' | 'derived'; why: string } | undefined {
  const { part } = f;
  if (part.problems.length > 0) return { code: 'problem', why: part.problems.join('; ') };
  if (part.conflictTarget && !part.conflictTarget.includes('user_id')) return { code: 'conflict', why: `ON CONFLICT (${part.conflictTarget.join(', ')}) lacks user_id` };
  const key = part.key;
  if (key.kind === 'none') {
    return { code: 'none', why: part.verb === 'insert' ? 'user_id is not among the INSERT values as a parameter' : 'no `user_id = $n` among the top-level AND conditions of its WHERE' };
  }
  const strangers = key.values.filter((v) => v === null || !users.includes(v));
  if (strangers.length > 0) return { code: 'stranger', why: `names ${strangers.join(', ')}, not the acting user (${users.join(', ')})` };
  // An IN list of one user is that user's equality.
  if (key.kind === 'in' && key.values.length > 1) return { code: 'several', why: 'user_id IN (several users)' };
  if (key.kind === 'derived') return { code: 'derived', why: `user_id read from the WITH query "${key.via}"` };
  return undefined;
}

describe('Citus-ready: user_id keys every statement and every unique key of the sharded tables', () => {
  let testDb: TestDatabase;
  let capture: SqlCapture;
  let raw: postgres.Sql;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    capture = await openCapturingDb(testDb.url);
    raw = postgres(testDb.url, { max: 1, onnotice: () => undefined });
  });
  afterAll(async () => {
    await capture?.close();
    await raw?.end({ timeout: 5 });
    await testDb?.drop();
  });

  it('the sharded tables are the tasks module\'s tables and the outbox', () => {
    const own = (Object.values(taskTables) as unknown[]).flatMap((t) => (is(t, PgTable) ? [getTableName(t)] : []));
    // A table added to the module must be classified here (on the user's shard, or not).
    expect([...own, 'outbox'].sort()).toEqual([...SHARDED].sort());
  });

  it('the statement reader finds user keys, and refuses what is not one', () => {
    const alice = uuidv7();
    const bob = uuidv7();
    const part = (text: string, params: string[] = [alice]) => readStatement(text, params).find((p) => p.where === 'main')!;
    const keyed = part('select "id" from "tasks" where ("tasks"."user_id" = $1 and "tasks"."id" = $2)', [alice, bob]);
    expect(keyed.key).toEqual({ kind: 'eq', values: [alice] });
    // An OR beside the user's condition, a condition on another column, no WHERE: no key.
    expect(part('select "id" from "tasks" where ("tasks"."user_id" = $1 or "tasks"."id" = $2)').key.kind).toBe('none');
    expect(part('select "id" from "tasks" where "tasks"."id" = $1').key.kind).toBe('none');
    expect(part('select "id" from "tasks" order by "tasks"."created_at" desc limit $1').key.kind).toBe('none');
    expect(part('select "id" from "tasks" where "tasks"."user_id" >= $1').key.kind).toBe('none');
    // The text of a literal is not a condition.
    expect(part(`select "id" from "tasks" where "tasks"."title" = 'x and "user_id" = $1'`).key.kind).toBe('none');
    // Another table's user_id does not key this one.
    expect(part('select "id" from "tasks" where "task_counts"."user_id" = $1').key.kind).toBe('none');
    // A keyed subquery does not key the statement around it.
    const outer = readStatement('delete from "outbox" where "outbox"."id" in (select "id" from "outbox" where "outbox"."user_id" = $1)', [alice]);
    expect(outer.map((p) => [p.where, p.key.kind])).toEqual([
      ['subquery 1 of main', 'eq'],
      ['main', 'none'],
    ]);
    expect(part('update "tasks" set "user_id" = $1 where "tasks"."user_id" = $2', [bob, alice]).problems).toEqual(['assigns user_id: a row would move to another user']);
    const upsert = part('insert into "task_counts" ("user_id", "tasks") values ($1, $2) on conflict ("tasks") do update set "user_id" = $3', [alice, '1', bob]);
    expect(upsert.key).toEqual({ kind: 'value', values: [alice] });
    expect(upsert.conflictTarget).toEqual(['tasks']);
    expect(upsert.problems).toEqual(['ON CONFLICT DO UPDATE assigns user_id: a row would move to another user']);
    expect(part('insert into "outbox" ("id", "type") values ($1, $2)').key.kind).toBe('none');
    expect(part('insert into "outbox" ("id", "user_id") select "id", "user_id" from "tasks"').problems[0]).toMatch(/INSERT \.\.\. SELECT/);
    expect(part('vacuum "tasks"').problems[0]).toMatch(/kind 'vacuum'/);
    // A value read from a keyed WITH query is derived from its key; from an unkeyed one, it is not.
    const derived = readStatement(
      'with "c" as (insert into "task_counts" ("user_id", "tasks") values ($1, 1) returning "user_id") insert into "outbox" ("id", "user_id") values ($2, (select user_id from c))',
      [alice, bob],
    );
    expect(derived.find((p) => p.where === 'main')!.key).toEqual({ kind: 'derived', via: 'c', values: [alice] });
    const underived = readStatement('with "c" as (select "user_id" from "task_counts") insert into "outbox" ("id", "user_id") values ($1, (select user_id from c))', [bob]);
    expect(underived.find((p) => p.where === 'main')!.key.kind).toBe('none');
    // Joined with another WITH query (the router's bucket hold), the value is still c's; joined with a table, it is not known.
    const held = readStatement(
      'with "c" as (insert into "task_counts" ("user_id", "tasks") values ($1, 1) returning "user_id"), "h" as (select "bucket" from "shard_buckets" where "bucket" = $2 for key share) insert into "outbox" ("id", "user_id") values ($3, (select c.user_id from c, h))',
      [alice, '7', bob],
    );
    expect(held.find((p) => p.where === 'main')!.key).toEqual({ kind: 'derived', via: 'c', values: [alice] });
    const joinedTable = readStatement(
      'with "c" as (insert into "task_counts" ("user_id", "tasks") values ($1, 1) returning "user_id") insert into "outbox" ("id", "user_id") values ($2, (select c.user_id from c, users))',
      [alice, bob],
    );
    expect(joinedTable.find((p) => p.where === 'main')!.key.kind).toBe('none');
    // A user's id that is not the acting user's is reported.
    const f: Finding = { scenario: 's', statement: { text: '', params: [] }, part: keyed, table: 'tasks' };
    expect(violation(f, [alice])).toBeUndefined();
    expect(violation(f, [bob])?.code).toBe('stranger');
  });

  // Both shapes of the repository: on the one database, and on a shard of the application's
  // router, where writes also hold their bucket (src/infra/shards/ownership.ts).
  it.each([
    ['on the one database', false],
    ['on a shard of the router', true],
  ])('every statement of the tasks repository and its account-events consumer names its user, except the listed scatter queries (%s)', async (_, checked) => {
    if (checked) await capture.db.execute(sql`insert into shard_buckets (bucket) select generate_series(0, 1023) on conflict do nothing`);
    const calls = new Set<string>();
    const traced = <T extends object>(target: T): T =>
      new Proxy(target, {
        get(t, p, receiver) {
          const v: unknown = Reflect.get(t, p, receiver);
          if (typeof v === 'function' && typeof p === 'string') calls.add(p);
          return v;
        },
      });
    const repo = traced(new TasksRepository(capture.db, { read: (_userId, fn) => fn(capture.db) }, { name: 'main', checked }));
    const outbox = new OutboxRepository(capture.db);
    const accounts = createAccountsHandler({ repos: new ShardRepositories(singleShard({ db: capture.db } as Database), () => repo), dataChanged: async () => undefined });

    const alice = uuidv7();
    const bob = uuidv7();
    const admin = uuidv7();
    const day = 86_400_000;
    const newTask = (n: number, over: Partial<NewTask> = {}): NewTask => ({
      id: uuidv7(),
      title: `Task ${n}`,
      description: n % 2 === 0 ? 'with a description' : null,
      status: (['todo', 'in_progress', 'done'] as const)[n % 3]!,
      priority: (['low', 'medium', 'high', 'urgent'] as const)[n % 4]!,
      dueAt: n % 3 === 0 ? null : new Date(Date.now() + n * day),
      tags: n % 2 === 0 ? ['work'] : ['home', 'work'],
      ...over,
    });
    const accountEvent = (type: UserEventType, userId: string, updatedAt: Date, role: 'user' | 'admin' = 'user'): UserEvent => ({
      id: uuidv7(),
      type,
      schemaVersion: 1,
      occurredAt: new Date().toISOString(),
      userId,
      data: {
        user: { id: userId, email: `${userId}@example.com`, role, name: null, createdAt: new Date(0).toISOString(), updatedAt: updatedAt.toISOString() },
        ...(type === 'user.updated' ? { changes: ['email'] } : {}),
      },
    });

    const scenarios: Scenario[] = [];
    const add = (name: string, users: string[], run: () => Promise<unknown>, silent = false) => scenarios.push({ name, users, run, silent });
    const byAlice: Task[] = [];
    let last: Task | undefined;

    // Account events first: the owners' copies the admin's list shows.
    const since = Date.now();
    add('account user.created (alice)', [alice], () => accounts(accountEvent('user.created', alice, new Date(since))));
    add('account user.created (bob)', [bob], () => accounts(accountEvent('user.created', bob, new Date(since))));
    add('account user.created (admin)', [admin], () => accounts(accountEvent('user.created', admin, new Date(since), 'admin')));
    add('account user.updated (alice, newer)', [alice], () => accounts(accountEvent('user.updated', alice, new Date(since + 1000))));
    add('account user.updated (alice, older: no change)', [alice], () => accounts(accountEvent('user.updated', alice, new Date(since - 1000))));
    // Creates: under the cap, the cap reached (the statement fails whole), another user's.
    for (let n = 0; n < 6; n++) {
      add(`insert (alice, task ${n})`, [alice], async () => {
        const t = await repo.insert(alice, newTask(n), 10);
        if (!t) throw new Error('insert under the cap refused');
        byAlice.push(t);
        last = t;
      });
    }
    add('insert (alice, at the cap: refused)', [alice], async () => {
      if ((await repo.insert(alice, newTask(99), 6)) !== undefined) throw new Error('the cap let a task in');
    });
    for (let n = 0; n < 3; n++) add(`insert (bob, task ${n})`, [bob], () => repo.insert(bob, newTask(n)));
    // Reads of one task.
    add('get (routed)', [alice], () => repo.get(alice, byAlice[0]!.id));
    add('get (primary)', [alice], () => repo.get(alice, byAlice[0]!.id, 'primary'));
    add('get (missing)', [alice], () => repo.get(alice, uuidv7()));
    // Updates: the status becoming done (read under the row lock first), other fields, a stale
    // version, a missing task.
    add('update (status done)', [alice], () => repo.update(alice, byAlice[0]!.id, { status: 'done' }));
    add('update (title, expected version)', [alice], () => repo.update(alice, byAlice[1]!.id, { title: 'Renamed', tags: ['x'], dueAt: null }, 1));
    add('update (stale version)', [alice], () => repo.update(alice, byAlice[1]!.id, { title: 'Again' }, 1));
    add('update (missing task)', [alice], () => repo.update(alice, uuidv7(), { status: 'done' }));
    // Deletes: done, a stale version, a missing task.
    add('delete', [alice], () => repo.delete(alice, byAlice[5]!.id));
    add('delete (stale version)', [alice], () => repo.delete(alice, byAlice[2]!.id, 99));
    add('delete (missing task)', [alice], () => repo.delete(alice, uuidv7()));
    // Lists: without filters (the statements built once), each sort and direction, first page and after a cursor.
    for (const sort of TASK_SORTS) {
      for (const descending of [false, true]) {
        add(`list ${sort} ${descending ? 'desc' : 'asc'}`, [alice], () => repo.list(alice, {}, sort, descending, 3));
        add(`list ${sort} ${descending ? 'desc' : 'asc'} after a cursor`, [alice], () => repo.list(alice, {}, sort, descending, 3, keysetOf(sort, last!)));
      }
    }
    // Each filter alone, then all of them with each sort, direction and cursor.
    const filters: Record<string, TaskFilter> = {
      status: { statuses: ['todo', 'done'] },
      priority: { priorities: ['high'] },
      tag: { tag: 'work' },
      dueBefore: { dueBefore: new Date(Date.now() + 3 * day) },
      dueAfter: { dueAfter: new Date(Date.now() + day) },
      q: { q: 'task -description' },
    };
    for (const [name, filter] of Object.entries(filters)) add(`list filtered by ${name}`, [alice], () => repo.list(alice, filter, 'createdAt', true, 3));
    const everything: TaskFilter = Object.assign({}, ...Object.values(filters)) as TaskFilter;
    for (const sort of TASK_SORTS) {
      for (const descending of [false, true]) {
        add(`list with every filter, ${sort} ${descending ? 'desc' : 'asc'}`, [alice], () => repo.list(alice, everything, sort, descending, 3));
        add(`list with every filter, ${sort} ${descending ? 'desc' : 'asc'} after a cursor`, [alice], () =>
          repo.list(alice, everything, sort, descending, 3, keysetOf(sort, last!)),
        );
      }
    }
    // The admin's list: of one user (keyed), of every user (the scatter query), and their owners.
    const cursor = () => keysetOf('createdAt', last!);
    add('listAll, one user', [alice], () => repo.listAll(3, alice));
    add('listAll, one user, after a cursor', [alice], () => repo.listAll(3, alice, cursor()));
    add('listAll, every user', [], () => repo.listAll(3));
    add('listAll, every user, after a cursor', [], () => repo.listAll(3, undefined, cursor()));
    add('owners (none)', [], () => repo.owners([]), true);
    add('owners (the admin alone)', [admin], () => repo.owners([admin]));
    add("owners (a page's owners and the admin)", [admin, alice, bob], () => repo.owners([admin, alice, bob]));
    add('accountClosed', [alice], () => repo.accountClosed(alice));
    // The account's deletion: closes the count row, deletes the tasks, marks the copy; then the
    // closed account refuses a create, and late events change nothing.
    add('account user.deleted (bob)', [bob], () => accounts(accountEvent('user.deleted', bob, new Date(since + 2000))));
    add('account user.deleted (bob, redelivered)', [bob], () => accounts(accountEvent('user.deleted', bob, new Date(since + 2000))));
    add('account user.updated (bob, after the deletion)', [bob], () => accounts(accountEvent('user.updated', bob, new Date(since + 3000))));
    add('insert (bob, closed account: refused)', [bob], async () => {
      if ((await repo.insert(bob, newTask(7))) !== undefined) throw new Error('a closed account took a task');
    });
    add('accountClosed (closed)', [bob], async () => {
      if (!(await repo.accountClosed(bob))) throw new Error('not closed');
    });
    // The relay's side of the outbox, on the same shard: claim and mark, a failed publish
    // (attempts counted), the embedded mode's claim without a lock, the gauges, pruning.
    add('relay: claim and mark published', [], () => outbox.claim(2, async () => undefined));
    add('relay: claim, publish fails', [], () =>
      outbox.claim(2, () => Promise.reject(new Error('broker down'))).then(
        () => {
          throw new Error('the failed publish was not reported');
        },
        () => undefined,
      ),
    );
    add('relay: claim without a lock (embedded mode)', [], () => outbox.claim(100, async () => undefined, false));
    add('relay: stats', [], () => outbox.stats());
    add('relay: prune', [], () => outbox.prune(0));

    const findings: { finding: Finding; users: string[] }[] = [];
    const unclassified: string[] = [];
    for (const s of scenarios) {
      await s.run();
      const { statements, observed } = capture.take();
      // The production query observer (src/infra/db/observe.ts) saw exactly what was sent.
      expect(observed, `${s.name}: observer and driver disagree`).toEqual(statements.map((st) => st.text));
      if (s.silent) expect(statements, `${s.name} sends nothing`).toEqual([]);
      else expect(statements.length, `${s.name} sent no statement`).toBeGreaterThan(0);
      for (const statement of statements) {
        for (const part of readStatement(statement.text, statement.params)) {
          if (part.verb === 'unknown' || part.tables.length === 0) {
            if (part.problems.length > 0 || part.verb === 'unknown') unclassified.push(`${s.name}: ${part.problems.join('; ')}\n      ${statement.text}`);
            continue;
          }
          for (const table of part.tables.filter((t) => !ROUTER_TABLES.includes(t))) {
            if (!isSharded(table)) unclassified.push(`${s.name}: touches ${table}, which is not classified as on a user's shard or not\n      ${statement.text}`);
            else findings.push({ finding: { scenario: s.name, statement, part, table }, users: s.users });
          }
        }
      }
    }
    expect(unclassified, unclassified.join('\n')).toEqual([]);

    const used = new Map<object, number>();
    const violations: string[] = [];
    for (const { finding: f, users } of findings) {
      const v = violation(f, users);
      if (v === undefined) continue;
      const listed =
        v.code === 'none' || v.code === 'several'
          ? SCATTER.find((e) => e.scenario.test(f.scenario) && e.table === f.table && e.key === (v.code === 'none' ? 'none' : 'in'))
          : v.code === 'derived'
            ? CITUS_REWRITES.find((e) => e.scenario.test(f.scenario) && e.table === f.table)
            : undefined;
      if (listed) used.set(listed, (used.get(listed) ?? 0) + 1);
      else violations.push(show(f, v.why));
    }
    expect(violations, `statements on a user's shard that do not name the user:\n${violations.join('\n')}`).toEqual([]);

    // Each listed exception still happens (a fixed one is taken off the list).
    const stale = [...SCATTER, ...CITUS_REWRITES].filter((e) => !used.has(e)).map((e) => `${String(e.scenario)} on ${e.table} (${e.why})`);
    expect(stale, 'listed exceptions that no statement needs any more').toEqual([]);

    // Everything ran: every method of the repository (public and private, since the methods
    // call each other through the traced object), every account event type.
    const methods = Object.getOwnPropertyNames(TasksRepository.prototype).filter((m) => m !== 'constructor');
    expect(methods.filter((m) => !calls.has(m)), 'repository methods no scenario ran: add one').toEqual([]);
    expect(USER_EVENT_TYPES.filter((t) => !scenarios.some((s) => s.name.startsWith(`account ${t} `)))).toEqual([]);
  });

  /** The sharded relations: tasks with its partitions, task_counts, task_owners, outbox. */
  const SHARDED_RELATIONS = `
    select relid::regclass as rel from pg_partition_tree('tasks'::regclass)
    union select 'task_counts'::regclass union select 'task_owners'::regclass union select 'outbox'::regclass`;

  /** Primary keys, unique indexes and exclusion constraints of the sharded relations without user_id. */
  async function uniqueWithoutUser(sql: postgres.Sql | postgres.TransactionSql) {
    return sql.unsafe<{ index: string; table: string; def: string }[]>(`
      with sharded as (${SHARDED_RELATIONS})
      select ic.relname as index, i.indrelid::regclass::text as table, pg_get_indexdef(i.indexrelid) as def
      from pg_index i
      join pg_class ic on ic.oid = i.indexrelid
      where (i.indisunique or i.indisexclusion)
        and i.indrelid in (select rel from sharded)
        and not exists (
          select 1 from pg_attribute a
          where a.attrelid = i.indrelid and a.attname = 'user_id' and a.attnum = any (i.indkey::int2[])
        )
      order by ic.relname::text collate "C"`);
  }

  /**
   * Foreign keys from or to a sharded relation that leave a user's data: to or from a table not
   * on the shard, or not pairing user_id with user_id (Citus: foreign keys between co-located
   * tables include the distribution column).
   */
  async function foreignKeysCrossingUsers(sql: postgres.Sql | postgres.TransactionSql) {
    return sql.unsafe<{ name: string; def: string; from_table: string; to_table: string }[]>(`
      with sharded as (${SHARDED_RELATIONS}),
      fks as (
        select c.oid, c.conname, c.conrelid, c.confrelid,
          (select array_agg(a.attname::text order by k.ord) from unnest(c.conkey) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum) as from_cols,
          (select array_agg(a.attname::text order by k.ord) from unnest(c.confkey) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.attnum) as to_cols
        from pg_constraint c
        where c.contype = 'f' and (c.conrelid in (select rel from sharded) or c.confrelid in (select rel from sharded))
      )
      select conname as name, pg_get_constraintdef(oid) as def, conrelid::regclass::text as from_table, confrelid::regclass::text as to_table
      from fks
      where not (conrelid in (select rel from sharded) and confrelid in (select rel from sharded))
         or array_position(from_cols, 'user_id') is null
         or array_position(from_cols, 'user_id') is distinct from array_position(to_cols, 'user_id')
      order by conname::text collate "C"`);
  }

  it('every primary key and unique index of the sharded tables includes user_id (outbox_pkey listed)', async () => {
    const found = await uniqueWithoutUser(raw);
    expect(
      found.filter((f) => !KEY_EXCEPTIONS.some((e) => e.index === f.index)),
      found.map((f) => `${f.table}: ${f.def}`).join('\n'),
    ).toEqual([]);
    // The listed ones are still there (a fixed one is taken off the list).
    expect(found.map((f) => f.index), KEY_EXCEPTIONS.map((e) => `${e.index}: ${e.why}`).join('\n')).toEqual(KEY_EXCEPTIONS.map((e) => e.index));
    // Every sharded table has a primary key: Citus's rebalancer moves shards by logical
    // replication, which needs one (or a replica identity) (docs/scaling.md).
    const pks = await raw.unsafe<{ rel: string }[]>(`
      with sharded as (${SHARDED_RELATIONS})
      select rel::text from sharded where not exists (select 1 from pg_index i where i.indrelid = rel and i.indisprimary)`);
    expect(pks).toEqual([]);
  });

  it('no foreign key on a sharded table leaves the user\'s data', async () => {
    expect(await foreignKeysCrossingUsers(raw)).toEqual([]);
  });

  it('the catalog checks find a unique key without user_id and a foreign key out of the shard (planted, rolled back)', async () => {
    const planted = await raw
      .begin(async (tx) => {
        // Partial (`where false`): nothing to index, whatever rows the other tests left.
        await tx.unsafe('create unique index planted_task_counts_tasks on task_counts (tasks) where false');
        await tx.unsafe('create unique index planted_tasks_p0_id on tasks_p0 (id) where false');
        await tx.unsafe('alter table task_owners add constraint planted_owner_account foreign key (user_id) references users (id) not valid');
        // Between two tables of the shard, user_id to user_id: stays inside the user's data.
        await tx.unsafe('alter table task_counts add constraint planted_counts_owner foreign key (user_id) references task_owners (user_id) not valid');
        const result = { unique: (await uniqueWithoutUser(tx)).map((r) => r.index), fks: (await foreignKeysCrossingUsers(tx)).map((r) => r.name) };
        throw Object.assign(new Error('rollback'), { result });
      })
      .catch((err: { result?: { unique: string[]; fks: string[] } }) => {
        if (!err.result) throw err;
        return err.result;
      });
    expect(planted.unique).toEqual(['outbox_pkey', 'planted_task_counts_tasks', 'planted_tasks_p0_id']);
    expect(planted.fks).toEqual(['planted_owner_account']);
    expect((await uniqueWithoutUser(raw)).map((r) => r.index)).toEqual(['outbox_pkey']);
  });
});
