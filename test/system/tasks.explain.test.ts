// Query plans of the task lists on a realistic volume: 1,000,000 tasks over 1,000 users.
// The SQL explained is the SQL the repository really issues (captured from postgres.js's debug
// hook), run with its own parameters through EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) on the same
// database. For every list shape a user can ask for, the plan must read an index of the user's
// partition and never scan a tasks partition sequentially; the plain sorts must come out of the
// index already ordered (no Sort node); and page 500 of a cursor walk must touch about as many
// buffers as page 1. Nothing here asserts on timing.
//
// Large-data test (about a minute, most of it filling the table): part of every full run; skip it
// locally with TEST_LARGE=0.
import { availableParallelism } from 'node:os';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/infra/db/database.js';
import { keysetOf, type Keyset } from '../../src/modules/tasks/keyset.js';
import type { Task, TaskFilter } from '../../src/modules/tasks/model.js';
import { TasksRepository } from '../../src/modules/tasks/repository.js';
import type { TaskSort } from '../../src/modules/tasks/sorts.js';
import { RANDOM_DRAWS, TASK_COLUMNS_FROM_DRAWS } from '../../src/operations/seed.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const LARGE = process.env.TEST_LARGE !== '0';

const USERS = 1_000;
const TASKS = 1_000_000;
/** Every 50th task belongs to user 1: 20,000 tasks, so that page 500 of 20 exists. */
const HEAVY_EVERY = 50;
const PAGE = 20;
const DEEP_PAGE = 500;
/** Deterministic user ids, so the test can name its users: user n is md5('explain-user-n'). */
const userIdSql = (n: string) => `md5('explain-user-' || ${n})::uuid`;

const FILL_USERS = `
INSERT INTO users (id, email, password_hash, role, name, created_at, updated_at)
SELECT ${userIdSql('u')},
       'user' || u || '@example.com',
       '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo',
       (CASE WHEN u > ${USERS - 3} THEN 'admin' ELSE 'user' END)::user_role,
       'User ' || u,
       timestamptz '2022-12-01 00:00Z' + u * interval '17 minutes',
       timestamptz '2022-12-01 00:00Z' + u * interval '17 minutes'
FROM generate_series(1, ${USERS}) AS u`;

// Tasks $1..$2 of the series. Task n is created at about 2023-01-01 + n * 63 s (two years for
// 1,000,000 tasks, so the heap is in creation order as in real life) and belongs to user 1 when
// n is a multiple of 50, otherwise to one of users 2..1000 in turn (~981 tasks each). Ids are
// UUIDv7 built from created_at, like src/shared/ids.ts makes them. Status is mostly todo/done,
// priority mostly medium, half the tasks have no due date, 0-3 distinct tags from 12, and
// titles/descriptions are built from small vocabularies so full-text search has matches.
const FILL_TASKS = `
INSERT INTO tasks (user_id, id, title, description, status, priority, due_at, tags, created_at, updated_at, completed_at, version)
SELECT ${userIdSql('s.u')},
       ${TASK_COLUMNS_FROM_DRAWS},
       s.created,
       s.updated,
       CASE WHEN s.r1 >= 0.55 THEN s.updated END,
       1 + floor(s.r6 * 4)::int
FROM (
  SELECT n,
         CASE WHEN n % ${HEAVY_EVERY} = 0 THEN 1 ELSE 2 + n % ${USERS - 1} END AS u,
         c.created,
         c.created + CASE WHEN random() < 0.6 THEN random() * interval '20 days' ELSE interval '0' END AS updated,
         md5(n::text || random()::text) AS h,
         ${RANDOM_DRAWS}
  FROM generate_series($1::int, $2::int) AS n,
       LATERAL (SELECT timestamptz '2023-01-01 00:00Z' + n * interval '63 seconds' + random() * interval '60 seconds' AS created) AS c
  OFFSET 0 -- keep the random() columns evaluated once per row
) AS s`;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Scan Direction'?: string;
  'Actual Rows': number;
  'Shared Hit Blocks': number;
  'Shared Read Blocks': number;
  Plans?: PlanNode[];
}
interface Explained {
  Plan: PlanNode;
  'Execution Time': number;
}
interface Captured {
  query: string;
  params: unknown[];
}
interface Shape {
  name: string;
  /** The repository call; returns its rows. */
  run: () => Promise<unknown[]>;
  /** A plain sort (no filter): the index must deliver the order, so no Sort node. */
  plainSort: boolean;
  /** Scoped to one user: the plan must stay inside that user's partition. */
  oneUser: boolean;
}

function* walk(n: PlanNode): Generator<PlanNode> {
  yield n;
  for (const c of n.Plans ?? []) yield* walk(c);
}
const buffers = (e: Explained) => e.Plan['Shared Hit Blocks'] + e.Plan['Shared Read Blocks'];
const INDEX_NODES = new Set(['Index Scan', 'Index Only Scan', 'Bitmap Index Scan']);
const describePlan = (n: PlanNode, depth = 0): string =>
  [
    `${'  '.repeat(depth)}${n['Node Type']}${n['Scan Direction'] === 'Backward' ? ' Backward' : ''}` +
      `${n['Index Name'] ? ` using ${n['Index Name']}` : n['Relation Name'] ? ` on ${n['Relation Name']}` : ''} (rows=${n['Actual Rows']})`,
    ...(n.Plans ?? []).map((c) => describePlan(c, depth + 1)),
  ].join('\n');

function report(line: string) {
  // eslint-disable-next-line no-console -- the figures this test measures are its report
  console.log(line);
}

describe.skipIf(!LARGE)('task list query plans on 1,000,000 tasks', { timeout: 120_000 }, () => {
  let testDb: TestDatabase;
  let sql: postgres.Sql;
  let client: postgres.Sql;
  let repo: TasksRepository;
  let captured: Captured[] = [];
  let partitions = new Set<string>();
  let partitionIndexes = new Set<string>();
  let heavyUser = '';
  let typicalUser = '';
  let heavyCount = 0;
  let typicalCount = 0;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    const workers = Math.min(4, Math.max(2, availableParallelism()));
    sql = postgres(testDb.url, { max: workers, prepare: false, onnotice: () => undefined });
    // The repository's own client: every statement it sends is recorded, with its parameters.
    client = postgres(testDb.url, {
      max: 1,
      onnotice: () => undefined,
      debug: (_connection, query, parameters) => {
        captured.push({ query, params: [...(parameters as unknown[])] });
      },
    });
    const db: Db = drizzle(client);
    repo = new TasksRepository(db);

    const started = Date.now();
    const phase = (() => {
      let last = started;
      const out: string[] = [];
      return Object.assign((name: string) => {
        const now = Date.now();
        out.push(`${name} ${((now - last) / 1000).toFixed(1)}s`);
        last = now;
      }, { out });
    })();

    await sql.unsafe(FILL_USERS);
    // Bulk load: set the secondary indexes and the foreign key aside and rebuild them from their
    // own definitions afterwards, which is several times faster than maintaining them row by row.
    // The primary key stays. The rebuilt set is checked against the original below.
    const indexDefs = async () =>
      (
        await sql<{ indexname: string; indexdef: string }[]>`
          select indexname, indexdef from pg_indexes
          where schemaname = 'public' and tablename = 'tasks'
            and indexname not in (select conname from pg_constraint where conrelid = 'tasks'::regclass)
          order by indexname`
      ).map((r) => ({ name: r.indexname, def: r.indexdef }));
    const indexes = await indexDefs();
    const fks = await sql<{ conname: string; def: string }[]>`
      select conname, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = 'tasks'::regclass and contype = 'f'`;
    expect(indexes.length).toBeGreaterThanOrEqual(8);
    for (const fk of fks) await sql.unsafe(`ALTER TABLE tasks DROP CONSTRAINT ${fk.conname}`);
    for (const ix of indexes) await sql.unsafe(`DROP INDEX ${ix.name}`);
    phase('prepare');

    const slice = Math.ceil(TASKS / workers);
    await Promise.all(
      Array.from({ length: workers }, (_, w) => sql.unsafe(FILL_TASKS, [w * slice + 1, Math.min(TASKS, (w + 1) * slice)])),
    );
    phase(`insert(${workers} connections)`);

    await Promise.all(
      indexes.map((ix) =>
        sql.begin(async (tx) => {
          await tx.unsafe(`SET LOCAL maintenance_work_mem = '128MB'`);
          // pg_indexes shows a partitioned index as "ON ONLY tasks"; build it on every partition.
          await tx.unsafe(ix.def.replace(' ON ONLY ', ' ON '));
        }),
      ),
    );
    for (const fk of fks) await sql.unsafe(`ALTER TABLE tasks ADD CONSTRAINT ${fk.conname} ${fk.def}`);
    expect(await indexDefs()).toEqual(indexes);
    phase('indexes+fk');

    partitions = new Set(
      (await sql<{ name: string }[]>`select inhrelid::regclass::text as name from pg_inherits where inhparent = 'tasks'::regclass`).map((r) => r.name),
    );
    partitionIndexes = new Set(
      (await sql<{ name: string }[]>`select indexname as name from pg_indexes where tablename in ${sql([...partitions])}`).map((r) => r.name),
    );
    // A settled table: visibility map set, statistics current.
    await Promise.all([...partitions].map((p) => sql.unsafe(`VACUUM ${p}`)));
    await sql`ANALYZE users`;
    await sql`ANALYZE tasks`;
    phase('vacuum+analyze');

    const [ids] = await sql.unsafe<{ heavy: string; typical: string }[]>(
      `select ${userIdSql('1')}::text as heavy, ${userIdSql(String(USERS / 2))}::text as typical`,
    );
    heavyUser = ids!.heavy;
    typicalUser = ids!.typical;
    const [counts] = await sql<{ total: number; users: number; heavy: number; typical: number }[]>`
      select count(*)::int as total, count(distinct user_id)::int as users,
             count(*) filter (where user_id = ${heavyUser})::int as heavy,
             count(*) filter (where user_id = ${typicalUser})::int as typical
      from tasks`;
    expect(counts!.total).toBe(TASKS);
    heavyCount = counts!.heavy;
    typicalCount = counts!.typical;
    const mix = await sql<{ k: string; n: number }[]>`
      select 'status ' || status as k, count(*)::int as n from tasks group by status
      union all select 'priority ' || priority, count(*)::int from tasks group by priority
      union all select 'due_at null', count(*)::int from tasks where due_at is null
      union all select 'no tags', count(*)::int from tasks where tags = '{}'
      union all select 'description null', count(*)::int from tasks where description is null
      order by 1`;
    report(
      `[explain] filled ${counts!.total} tasks over ${counts!.users} users (user 1: ${heavyCount}, typical user: ${typicalCount}) ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)}s: ${phase.out.join(', ')}\n` +
        `[explain] mix: ${mix.map((m) => `${m.k}=${m.n}`).join(', ')}`,
    );
  }, 600_000);

  afterAll(async () => {
    await client?.end({ timeout: 5 });
    await sql?.end({ timeout: 5 });
    await testDb?.drop();
  });

  /** Runs fn (one repository call) and returns its rows and the one tasks query it sent. */
  async function capture(fn: () => Promise<unknown[]>): Promise<{ rows: unknown[]; sent: Captured }> {
    captured = [];
    const rows = await fn();
    const sent = captured.filter((c) => /\bfrom "tasks"/i.test(c.query));
    expect(sent, captured.map((c) => c.query).join('\n')).toHaveLength(1);
    return { rows, sent: sent[0]! };
  }

  // EXPLAIN runs on the repository's own client: drizzle() replaces that client's serializers for
  // date/time types with pass-through ones, so a parameter goes out exactly as it did for the
  // repository (a bare postgres.js client would turn the cursor key 'infinity' into a Date and
  // throw). Unprepared, so it is planned with the parameter values, as the repository's first
  // executions of a statement are.
  async function explain(sent: Captured): Promise<Explained> {
    const [row] = await client.unsafe(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sent.query}`, sent.params as postgres.ParameterOrJSON<never>[], {
      prepare: false,
    });
    return (row!['QUERY PLAN'] as Explained[])[0]!;
  }

  /** The plan of a shape, checked: index access, no Seq Scan on tasks, no Sort for plain sorts. */
  async function checkShape(shape: Shape): Promise<Explained> {
    const { rows, sent } = await capture(shape.run);
    const plan = await explain(sent);
    const nodes = [...walk(plan.Plan)];
    const text = `${shape.name}\n${sent.query}\n${JSON.stringify(sent.params)}\n${describePlan(plan.Plan)}`;
    const onTasks = (n: PlanNode) => partitions.has(n['Relation Name'] ?? '') || partitionIndexes.has(n['Index Name'] ?? '');

    // The statement explained is the one that produced the repository's rows.
    expect(plan.Plan['Actual Rows'], text).toBe(rows.length);
    expect(rows.length, `${text}\nno rows: the shape would not exercise its plan`).toBeGreaterThan(0);
    expect(
      nodes.filter((n) => n['Node Type'] === 'Seq Scan' && onTasks(n)),
      text,
    ).toEqual([]);
    expect(
      nodes.filter((n) => INDEX_NODES.has(n['Node Type']) && onTasks(n)).length,
      text,
    ).toBeGreaterThan(0);
    if (shape.plainSort) {
      expect(
        nodes.filter((n) => n['Node Type'] === 'Sort' || n['Node Type'] === 'Incremental Sort'),
        text,
      ).toEqual([]);
    }
    if (shape.oneUser) {
      // Partition pruning: one user's list reads one partition only.
      expect(new Set(nodes.filter((n) => partitions.has(n['Relation Name'] ?? '')).map((n) => n['Relation Name'])).size, text).toBe(1);
    }
    const scans = nodes.filter((n) => onTasks(n) || n['Relation Name'] === 'users' || n['Node Type'].includes('Sort'));
    report(
      `[explain] ${shape.name.padEnd(44)} rows=${String(rows.length).padStart(2)} buffers=${String(buffers(plan)).padStart(4)} ` +
        scans
          .map((n) => `${n['Node Type']}${n['Scan Direction'] === 'Backward' ? ' Backward' : ''}${n['Index Name'] ? `(${n['Index Name']})` : n['Relation Name'] ? `(${n['Relation Name']})` : ''}`)
          .join(' / '),
    );
    return plan;
  }

  const SORTS: TaskSort[] = ['createdAt', 'updatedAt', 'dueAt', 'priority'];
  const LIMIT = PAGE + 1; // what TasksService asks for: one extra row tells whether a next page exists
  const list = (user: () => string, filter: TaskFilter, sort: TaskSort, desc: boolean, after?: Keyset) => () =>
    repo.list(user(), filter, sort, desc, LIMIT, after);
  const label = (sort: TaskSort, desc: boolean) => `${desc ? '-' : ''}${sort}`;

  describe("one user's list", () => {
    it('default order (-createdAt) and every sort, ascending and descending, read an index already in order', async () => {
      await checkShape({ name: 'default (-createdAt)', run: list(() => typicalUser, {}, 'createdAt', true), plainSort: true, oneUser: true });
      for (const sort of SORTS) {
        for (const desc of [false, true]) {
          await checkShape({ name: `sort ${label(sort, desc)}`, run: list(() => typicalUser, {}, sort, desc), plainSort: true, oneUser: true });
        }
      }
    });

    it('every filter reads an index, never the table', async () => {
      const filters: [string, TaskFilter][] = [
        ['statuses todo,in_progress', { statuses: ['todo', 'in_progress'] }],
        ['statuses done', { statuses: ['done'] }],
        ['priorities high,urgent', { priorities: ['high', 'urgent'] }],
        ['priorities low', { priorities: ['low'] }],
        ['tag finance', { tag: 'finance' }],
        ['dueBefore 2024-01-01', { dueBefore: new Date('2024-01-01T00:00:00Z') }],
        ['dueAfter 2024-06-01', { dueAfter: new Date('2024-06-01T00:00:00Z') }],
        ['q invoice', { q: 'invoice' }],
        ['q "book flights" or passport -Alice', { q: '"book flights" or passport -Alice' }],
      ];
      for (const [name, filter] of filters) {
        await checkShape({ name: `filter ${name}`, run: list(() => typicalUser, filter, 'createdAt', true), plainSort: false, oneUser: true });
      }
    });

    it('a filter combination with a sort reads an index', async () => {
      const filter: TaskFilter = {
        statuses: ['todo', 'in_progress'],
        priorities: ['medium', 'high', 'urgent'],
        tag: 'work',
        dueAfter: new Date('2023-03-01T00:00:00Z'),
      };
      await checkShape({ name: 'combination, sort dueAt', run: list(() => typicalUser, filter, 'dueAt', false), plainSort: false, oneUser: true });
      await checkShape({
        name: 'combination + q, sort -priority',
        run: list(() => typicalUser, { statuses: ['todo'], q: 'report' }, 'priority', true),
        plainSort: false,
        oneUser: true,
      });
    });
  });

  // One test per order, so that a failure names the order. In dueAt order a task without a due
  // date sorts as 'infinity' (last ascending, first descending), and a cursor taken among those
  // tasks carries 'infinity' as its first key: each dueAt order is tested with a cursor among the
  // dated tasks and one among the undated.
  describe('cursor (keyset) pages read the index from the cursor on', () => {
    for (const sort of SORTS) {
      for (const desc of [false, true]) {
        it(`${label(sort, desc)}: cursors of page 2 and further in`, async () => {
          const all = await repo.list(typicalUser, {}, sort, desc, typicalCount);
          expect(all).toHaveLength(typicalCount);
          const positions: [string, number][] = [['page 2', PAGE - 1]];
          if (sort === 'dueAt') {
            positions.push(['among dated', all.findIndex((t) => t.dueAt !== null) + PAGE]);
            positions.push(['among undated', all.findIndex((t) => t.dueAt === null) + PAGE]);
          } else {
            positions.push(['middle', Math.floor(typicalCount / 2)]);
          }
          for (const [where, row] of positions) {
            const after = keysetOf(sort, all[row]!);
            const plan = await checkShape({
              name: `cursor ${where}, sort ${label(sort, desc)} [${after.values[0]}]`,
              run: list(() => typicalUser, {}, sort, desc, after),
              plainSort: true,
              oneUser: true,
            });
            expect(plan.Plan['Actual Rows']).toBe(LIMIT);
          }
        });
      }
    }
  });

  describe("admin's list with owners", () => {
    it('all users, newest first, reads each partition by index (merge, no sort)', async () => {
      await checkShape({ name: 'admin listAll', run: () => repo.listAll(LIMIT), plainSort: true, oneUser: false });
      const first = await repo.listAll(LIMIT);
      await checkShape({
        name: 'admin listAll, cursor page 2',
        run: () => repo.listAll(LIMIT, undefined, keysetOf('createdAt', first[PAGE - 1]!)),
        plainSort: true,
        oneUser: false,
      });
    });

    it('one user, newest first, reads that user’s index range', async () => {
      await checkShape({ name: 'admin listAll userId', run: () => repo.listAll(LIMIT, typicalUser), plainSort: true, oneUser: true });
    });
  });

  describe('deep pages', () => {
    // Page 500 must cost what page 1 costs: the keyset condition starts the index scan at the
    // cursor, so nothing before it is read. Buffers (shared hit + read) of the whole plan,
    // page 500 <= 2 x page 1 + 10.
    const withinReach = (deep: number, first: number) => deep <= 2 * first + 10;
    const figures: string[] = [];
    afterAll(() => {
      if (figures.length > 0) report(`[explain] buffers page 1 -> page ${DEEP_PAGE}: ${figures.join('; ')}`);
    });

    async function compare(name: string, page: (limit: number, after?: Keyset) => Promise<Task[]>, after: Keyset, oneUser: boolean, where = `page ${DEEP_PAGE}`) {
      const first = await checkShape({ name: `${name} page 1`, run: () => page(LIMIT), plainSort: true, oneUser });
      const deep = await checkShape({ name: `${name} ${where} [${after.values[0]}]`, run: () => page(LIMIT, after), plainSort: true, oneUser });
      expect(deep.Plan['Actual Rows']).toBe(LIMIT);
      figures.push(`${name} ${where}: ${buffers(first)} -> ${buffers(deep)}`);
      expect(withinReach(buffers(deep), buffers(first)), `${name} ${where}: ${buffers(deep)} buffers, page 1: ${buffers(first)}`).toBe(true);
    }

    it(`-createdAt (the default), walked page by page to page ${DEEP_PAGE}`, async () => {
      expect(heavyCount).toBeGreaterThanOrEqual(DEEP_PAGE * PAGE);
      // Walk as a client would: each page's cursor is the keyset of its last row.
      let after: Keyset | undefined;
      for (let p = 1; p < DEEP_PAGE; p++) {
        const page = await repo.list(heavyUser, {}, 'createdAt', true, LIMIT, after);
        expect(page).toHaveLength(LIMIT);
        after = keysetOf('createdAt', page[PAGE - 1]!);
      }
      // Page 500 holds rows 9,981..10,000 of the whole ordered list.
      const straight = await repo.list(heavyUser, {}, 'createdAt', true, DEEP_PAGE * PAGE);
      const deepRows = await repo.list(heavyUser, {}, 'createdAt', true, LIMIT, after);
      expect(deepRows.slice(0, PAGE).map((t) => t.id)).toEqual(straight.slice((DEEP_PAGE - 1) * PAGE).map((t) => t.id));
      await compare(`walked -createdAt (user with ${heavyCount} tasks)`, (limit, a) => repo.list(heavyUser, {}, 'createdAt', true, limit, a), after!, true);
    });

    // The cursor of page 500 is the keyset of row 9,980: read the rows before it in one go.
    for (const sort of SORTS) {
      for (const desc of [false, true]) {
        it(`${label(sort, desc)}`, async () => {
          const page = (limit: number, after?: Keyset) => repo.list(heavyUser, {}, sort, desc, limit, after);
          const before = await page((DEEP_PAGE - 1) * PAGE);
          await compare(label(sort, desc), page, keysetOf(sort, before[before.length - 1]!), true);
          if (sort === 'dueAt') {
            // Whether row 9,980 has a due date depends on the data; also go deep among the undated.
            const all = await page(heavyCount);
            const undated = all.filter((t) => t.dueAt === null).length;
            const row = all.findIndex((t) => t.dueAt === null) + Math.floor(undated * 0.9);
            expect(row + LIMIT).toBeLessThan(all.length);
            await compare(label(sort, desc), page, keysetOf(sort, all[row]!), true, `row ${row + 1} (among undated)`);
          }
        });
      }
    }

    it('admin listAll (all users)', async () => {
      const page = (limit: number, after?: Keyset) => repo.listAll(limit, undefined, after);
      const before = await page((DEEP_PAGE - 1) * PAGE);
      await compare('admin listAll', page, keysetOf('createdAt', before[before.length - 1]!), false);
    });
  });
});
