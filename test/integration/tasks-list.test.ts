// GET /v1/tasks against the real PostgreSQL: every sort order walked page by page, every filter,
// tenant isolation, and the query's validation (limit, sort, filters, cursors).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tasks as tasksTable } from '../../src/modules/tasks/table.js';
import type { CreateTaskInput } from '../../src/modules/tasks/schemas.js';
import { uuidv7 } from '../../src/shared/ids.js';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody, TaskBody } from '../helpers/bodies.js';
import { comparator } from '../helpers/fuzz/tasks-model.js';

const STATUSES = ['todo', 'in_progress', 'done'] as const;
const PRIORITIES = ['low', 'medium', 'high', 'urgent'] as const;
const SORTS = ['createdAt', '-createdAt', 'dueAt', '-dueAt', 'priority', '-priority', 'updatedAt', '-updatedAt'] as const;
const TITLES = ['Alpha report', 'Budget review', 'Call plumber', 'Design sketch', 'Email draft', 'Fix bicycle', 'Garden tidy'];
const SPECIAL_TAGS = ['a,b', '{x}', 'quote"d', 'back\\slash', 'NULL', 'ünïcödé'];
const BASE_DUE = Date.parse('2031-03-01T09:00:00.000Z');
const DAY = 86_400_000;
const N = 70;
/** Rows written straight to the table with one shared created_at/updated_at/due_at. */
const TIED = 6;

let t: TestApp;
let alice: SessionBody;
let bob: SessionBody;
/** Alice's tasks as the API last returned them, by id. */
const mine = new Map<string, TaskBody>();
const theirs = new Map<string, TaskBody>();

const req = (s: SessionBody) => as(t.app, s.accessToken);

async function create(s: SessionBody, body: CreateTaskInput): Promise<TaskBody> {
  const res = await req(s)({ method: 'POST', url: '/v1/tasks', payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<TaskBody>();
}

async function patch(s: SessionBody, id: string, body: Record<string, unknown>): Promise<TaskBody> {
  const res = await req(s)({ method: 'PATCH', url: `/v1/tasks/${id}`, payload: body });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<TaskBody>();
}

function taskInput(i: number): CreateTaskInput {
  const tags: string[] = [];
  if (i % 2 === 0) tags.push('work');
  if (i % 3 === 0) tags.push('home');
  if (i % 7 === 3) tags.push('errand');
  let description: string | null = null;
  if (i % 6 === 1) description = 'Keep running the nightly benchmarks';
  else if (i % 6 === 3) description = 'Ordinary note about groceries';
  else if (i % 6 === 5) description = '';
  return {
    title: `${TITLES[i % TITLES.length]} ${i}`,
    ...(description === null && i % 4 === 0 ? {} : { description }),
    status: STATUSES[(i * 5) % 3]!,
    priority: PRIORITIES[Math.floor(i / 3) % 4]!,
    // One in five without a due date; the rest share a handful of values, so ties are common.
    dueAt: i % 5 === 0 ? null : new Date(BASE_DUE + ((i * 7) % 11) * DAY + (i % 13 === 0 ? 123 : 0)).toISOString(),
    tags,
  };
}

/** The order the API promises: ascending by the sort's key tuple, or the whole tuple reversed. */
const expectedOrder = (tasks: TaskBody[], sortParam: string): TaskBody[] => [...tasks].sort(comparator(sortParam));

/** Follows nextCursor from the first page until it is null; returns every row in order. */
async function walk(s: SessionBody, query: string, limit = 7): Promise<{ rows: TaskBody[]; pages: number }> {
  const rows: TaskBody[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const params = new URLSearchParams(query);
    params.set('limit', String(limit));
    if (cursor) params.set('cursor', cursor);
    const res = await req(s)({ method: 'GET', url: `/v1/tasks?${params.toString()}` });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json<PageBody>();
    expect(page.data.length).toBeLessThanOrEqual(limit);
    // A page that hands out a cursor is full, and no page after the first is empty.
    if (page.nextCursor !== null) expect(page.data.length).toBe(limit);
    if (pages > 0) expect(page.data.length).toBeGreaterThan(0);
    rows.push(...page.data);
    cursor = page.nextCursor;
    pages++;
    expect(pages, 'pagination does not terminate').toBeLessThan(200);
  } while (cursor !== null);
  return { rows, pages };
}

const ids = (tasks: TaskBody[]) => tasks.map((x) => x.id);

function expectFieldError(res: { statusCode: number; headers: Record<string, unknown>; body: string }, field: string, where = 'query') {
  expect(res.statusCode, res.body).toBe(400);
  expect(String(res.headers['content-type'])).toContain('application/problem+json');
  const problem = JSON.parse(res.body) as ProblemBody;
  expect(problem.status).toBe(400);
  expect(problem.errors, res.body).toEqual(expect.arrayContaining([expect.objectContaining({ in: where, field })]));
}

const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

beforeAll(async () => {
  t = await createTestApp();
  alice = await register(t.app);
  bob = await register(t.app);

  // Created in concurrent batches so that several tasks share a created_at millisecond.
  for (let start = 0; start < N; start += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, N - start) }, (_, k) => create(alice, taskInput(start + k))));
    for (const x of batch) mine.set(x.id, x);
  }
  const special = await create(alice, { title: 'Odd tags', tags: SPECIAL_TAGS, priority: 'urgent' });
  mine.set(special.id, special);

  // Updates spread updated_at away from created_at; a concurrent batch gives ties there too.
  const all = [...mine.values()];
  for (const [k, x] of all.entries()) {
    if (k % 4 !== 1) continue;
    const p = await patch(alice, x.id, { title: `${x.title} (edited)` });
    mine.set(p.id, p);
  }
  const again = await Promise.all(all.filter((_, k) => k % 9 === 2).map((x) => patch(alice, x.id, { priority: 'high', status: 'in_progress' })));
  for (const x of again) mine.set(x.id, x);

  // Ties through the API depend on timing; these are certain: identical timestamps (and due
  // dates, and pairs of priorities), so only the id decides their order.
  const at = new Date();
  const tiedDue = new Date(BASE_DUE + 3 * DAY);
  const tiedIds = Array.from({ length: TIED }, () => uuidv7(at.getTime()));
  await t.database.db.insert(tasksTable).values(
    tiedIds.map((id, k) => ({
      id,
      userId: alice.user.id,
      title: `Tied ${k}`,
      status: 'todo' as const,
      priority: k % 2 === 0 ? ('low' as const) : ('urgent' as const),
      dueAt: k < 4 ? tiedDue : null,
      tags: [],
      createdAt: at,
      updatedAt: at,
    })),
  );
  for (const id of tiedIds) {
    const res = await req(alice)({ method: 'GET', url: `/v1/tasks/${id}` });
    expect(res.statusCode).toBe(200);
    mine.set(id, res.json<TaskBody>());
  }

  // Bob's tasks overlap Alice's in every filterable attribute.
  for (let i = 0; i < 6; i++) {
    const x = await create(bob, { ...taskInput(i), title: `Bob ${TITLES[i]}` });
    theirs.set(x.id, x);
  }
});
afterAll(() => t?.close());

describe('sorting and cursor pagination', () => {
  it('the fixture has ties in created_at, updated_at and due_at', () => {
    const tasks = [...mine.values()];
    const dup = (key: (x: TaskBody) => string | null) => {
      const values = tasks.map(key).filter((v) => v !== null);
      return values.length - new Set(values).size;
    };
    expect(tasks.length).toBe(N + 1 + TIED);
    expect(dup((x) => x.dueAt)).toBeGreaterThan(10);
    expect(tasks.filter((x) => x.dueAt === null).length).toBeGreaterThan(5);
    expect(dup((x) => x.createdAt)).toBeGreaterThanOrEqual(TIED - 1);
    expect(dup((x) => x.updatedAt)).toBeGreaterThanOrEqual(TIED - 1);
    expect(dup((x) => `${x.priority} ${x.createdAt}`)).toBeGreaterThanOrEqual(TIED - 2);
  });

  for (const sort of SORTS) {
    it(`sort=${sort}: walking every page gives each task once, in the promised order`, async () => {
      const expected = expectedOrder([...mine.values()], sort);
      const { rows, pages } = await walk(alice, `sort=${sort}`, 7);
      expect(pages).toBe(Math.ceil(expected.length / 7));
      const got = ids(rows);
      expect(new Set(got).size).toBe(got.length);
      expect(new Set(got)).toEqual(new Set(mine.keys()));
      expect(got).toEqual(ids(expected));
      expect(rows).toEqual(expected);
    });
  }

  it('a page as large as the whole list has no cursor; pages of one walk every task', async () => {
    const total = mine.size;
    const { rows, pages } = await walk(alice, 'sort=createdAt', total);
    expect(pages).toBe(1);
    expect(rows.length).toBe(total);
    const { pages: ones } = await walk(alice, 'sort=-priority', 1);
    expect(ones).toBe(total);
  });

  it('the default sort is -createdAt and the default limit is 20', async () => {
    const res = await req(alice)({ method: 'GET', url: '/v1/tasks' });
    expect(res.statusCode).toBe(200);
    const page = res.json<PageBody>();
    expect(page.data.length).toBe(20);
    expect(page.nextCursor).not.toBeNull();
    expect(ids(page.data)).toEqual(ids(expectedOrder([...mine.values()], '-createdAt').slice(0, 20)));
    // The cursor without a sort parameter continues the default order.
    const next = (await req(alice)({ method: 'GET', url: `/v1/tasks?cursor=${page.nextCursor}` })).json<PageBody>();
    expect(ids(next.data)).toEqual(ids(expectedOrder([...mine.values()], '-createdAt').slice(20, 40)));
  });

  it('limit=100 returns everything on one page', async () => {
    const res = await req(alice)({ method: 'GET', url: '/v1/tasks?limit=100' });
    expect(res.statusCode).toBe(200);
    const page = res.json<PageBody>();
    expect(page.data.length).toBe(mine.size);
    expect(page.nextCursor).toBeNull();
  });
});

describe('filters', () => {
  const all = () => [...mine.values()];
  const cases: [string, string, (x: TaskBody) => boolean][] = [
    ['status single', 'status=done', (x) => x.status === 'done'],
    ['status list', 'status=todo,in_progress', (x) => x.status === 'todo' || x.status === 'in_progress'],
    ['priority single', 'priority=urgent', (x) => x.priority === 'urgent'],
    ['priority list', 'priority=low,high', (x) => x.priority === 'low' || x.priority === 'high'],
    ['tag', 'tag=work', (x) => x.tags.includes('work')],
    ['tag that only some have', 'tag=errand', (x) => x.tags.includes('errand')],
    ['tag nobody has', 'tag=nothing-here', () => false],
    // Boundaries equal to stored due dates: dueBefore is exclusive, dueAfter inclusive; nulls never match.
    ['dueBefore (exclusive)', `dueBefore=${new Date(BASE_DUE + 4 * DAY).toISOString()}`, (x) => x.dueAt !== null && Date.parse(x.dueAt) < BASE_DUE + 4 * DAY],
    ['dueAfter (inclusive)', `dueAfter=${new Date(BASE_DUE + 6 * DAY).toISOString()}`, (x) => x.dueAt !== null && Date.parse(x.dueAt) >= BASE_DUE + 6 * DAY],
    [
      'dueAfter and dueBefore with an offset',
      `dueAfter=${encodeURIComponent('2031-03-03T11:00:00+02:00')}&dueBefore=${encodeURIComponent('2031-03-08T09:00:00.000Z')}`,
      (x) => x.dueAt !== null && Date.parse(x.dueAt) >= BASE_DUE + 2 * DAY && Date.parse(x.dueAt) < BASE_DUE + 7 * DAY,
    ],
    ['q: a word only in descriptions, stemmed (run ~ running)', 'q=run', (x) => (x.description ?? '').includes('running')],
    ['q: inflected query word', 'q=runs', (x) => (x.description ?? '').includes('running')],
    ['q: a word only in titles', 'q=plumber', (x) => x.title.includes('plumber')],
    ['q: two words are ANDed', 'q=nightly%20groceries', () => false],
    ['q: case-insensitive', 'q=GROCERY', (x) => (x.description ?? '').includes('groceries')],
    ['q: only a stop word', 'q=the', () => false],
    ['q: phrase and negation (websearch syntax)', `q=${encodeURIComponent('"alpha report" -edited')}`, (x) => x.title.startsWith('Alpha report') && !x.title.includes('edited')],
    [
      'combination',
      `status=todo,in_progress&priority=high,urgent&tag=work&dueAfter=${new Date(BASE_DUE + DAY).toISOString()}`,
      (x) =>
        (x.status === 'todo' || x.status === 'in_progress') &&
        (x.priority === 'high' || x.priority === 'urgent') &&
        x.tags.includes('work') &&
        x.dueAt !== null &&
        Date.parse(x.dueAt) >= BASE_DUE + DAY,
    ],
    [
      'combination with text search',
      'q=benchmark&status=done,todo&priority=low,medium,urgent',
      (x) => (x.description ?? '').includes('benchmarks') && x.status !== 'in_progress' && x.priority !== 'high',
    ],
  ];

  for (const [name, query, keep] of cases) {
    it(`${name}: ${decodeURIComponent(query)}`, async () => {
      const expected = all().filter(keep);
      // One page with everything, then paginated under two different orders.
      const one = await req(alice)({ method: 'GET', url: `/v1/tasks?${query}&limit=100` });
      expect(one.statusCode, one.body).toBe(200);
      expect(new Set(ids(one.json<PageBody>().data))).toEqual(new Set(ids(expected)));
      for (const sort of ['dueAt', '-priority']) {
        const { rows } = await walk(alice, `${query}&sort=${sort}`, 4);
        expect(ids(rows)).toEqual(ids(expectedOrder(expected, sort)));
      }
    });
  }

  it('tsquery operators and punctuation in q are a 200, never a 500', async () => {
    for (const q of [':*', '& | !', "!( <-> 'x':A", '\\', '"unterminated', 'or or -', '((((', 'a:*b & c']) {
      const res = await req(alice)({ method: 'GET', url: `/v1/tasks?q=${encodeURIComponent(q)}` });
      expect(res.statusCode, `${q}: ${res.body}`).toBe(200);
    }
  });

  it('the filters select non-trivial subsets of the fixture', () => {
    for (const [, , keep] of cases.filter(([n]) => !/nobody|ANDed|stop word/.test(n))) {
      const n = all().filter(keep).length;
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThan(mine.size);
    }
  });

  it('tags with characters special to array literals match exactly', async () => {
    for (const tag of SPECIAL_TAGS) {
      const res = await req(alice)({ method: 'GET', url: `/v1/tasks?tag=${encodeURIComponent(tag)}&limit=100` });
      expect(res.statusCode, `${tag}: ${res.body}`).toBe(200);
      expect(res.json<PageBody>().data.map((x) => x.title), tag).toEqual(['Odd tags']);
    }
    for (const tag of ['a', 'b', 'x', 'quote', 'null']) {
      const res = await req(alice)({ method: 'GET', url: `/v1/tasks?tag=${encodeURIComponent(tag)}&limit=100` });
      expect(res.statusCode).toBe(200);
      expect(res.json<PageBody>().data, tag).toEqual([]);
    }
  });
});

describe('isolation between users', () => {
  it("a user's list, with or without filters, holds only their own tasks", async () => {
    for (const query of ['', 'tag=work', 'q=run', 'status=todo,in_progress,done', 'sort=dueAt', 'sort=-priority']) {
      const { rows } = await walk(bob, query, 2);
      const expected = [...theirs.values()].filter((x) => {
        const p = new URLSearchParams(query);
        if (p.get('tag')) return x.tags.includes(p.get('tag')!);
        if (p.get('q')) return (x.description ?? '').includes('running');
        return true;
      });
      expect(new Set(ids(rows)), query).toEqual(new Set(ids(expected)));
      for (const id of ids(rows)) expect(mine.has(id)).toBe(false);
    }
    const { rows } = await walk(alice, '', 50);
    for (const id of ids(rows)) expect(theirs.has(id)).toBe(false);
  });

  it("another user's cursor only positions the owner's own list", async () => {
    const first = (await req(alice)({ method: 'GET', url: '/v1/tasks?sort=createdAt&limit=1' })).json<PageBody>();
    expect(first.nextCursor).not.toBeNull();
    const res = await req(bob)({ method: 'GET', url: `/v1/tasks?sort=createdAt&limit=100&cursor=${first.nextCursor}` });
    expect(res.statusCode).toBe(200);
    for (const x of res.json<PageBody>().data) expect(theirs.has(x.id)).toBe(true);
  });
});

describe('query validation', () => {
  const get = (url: string) => req(alice)({ method: 'GET', url });

  for (const limit of ['0', '101', '100000', 'abc', '-1', '1.5', '']) {
    it(`limit=${JSON.stringify(limit)} is a 400 naming limit`, async () => {
      expectFieldError(await get(`/v1/tasks?limit=${limit}`), 'limit');
    });
  }

  it('limit=1 and limit=100 are the bounds', async () => {
    expect((await get('/v1/tasks?limit=1')).json<PageBody>().data.length).toBe(1);
    expect((await get('/v1/tasks?limit=100')).statusCode).toBe(200);
  });

  const bad: [string, string][] = [
    ['sort=title', 'sort'],
    ['sort=createdat', 'sort'],
    ['sort=--createdAt', 'sort'],
    ['status=todo,nope', 'status'],
    ['status=todo,', 'status'],
    ['status=', 'status'],
    ['priority=urgent,critical', 'priority'],
    ['dueBefore=yesterday', 'dueBefore'],
    ['dueBefore=2031-13-01T00:00:00Z', 'dueBefore'],
    ['dueBefore=2031-02-30T00:00:00Z', 'dueBefore'],
    ['dueAfter=2031-03-01', 'dueAfter'],
    ['tag=', 'tag'],
    [`q=${'x'.repeat(201)}`, 'q'],
    ['color=red', 'color'],
    ['tag=a%00b', 'tag'],
    ['q=run%00', 'q'],
    ['status=todo&status=done', 'status'],
    [`cursor=${'a'.repeat(513)}`, 'cursor'],
  ];
  for (const [query, field] of bad) {
    it(`${query.slice(0, 60)} is a 400 naming ${field}`, async () => {
      expectFieldError(await get(`/v1/tasks?${query}`), field);
    });
  }

  // Values RFC 3339 grammar (as Ajv checks it) lets through but that no real instant matches.
  for (const value of ['2016-12-31T23:59:60Z', '2031-03-01T00:00:00+01', '0000-01-01T00:00:00Z']) {
    it(`dueBefore=${value} is a 400, never a 500`, async () => {
      expectFieldError(await get(`/v1/tasks?dueBefore=${encodeURIComponent(value)}`), 'dueBefore');
      expectFieldError(await get(`/v1/tasks?dueAfter=${encodeURIComponent(value)}`), 'dueAfter');
    });
  }
});

describe('cursor validation', () => {
  const get = (query: string) => req(alice)({ method: 'GET', url: `/v1/tasks?${query}` });
  const someId = () => [...mine.keys()][0]!;

  it('a cursor issued for one sort is rejected by another', async () => {
    const page = (await get('sort=createdAt&limit=3')).json<PageBody>();
    expect(page.nextCursor).not.toBeNull();
    const cursor = page.nextCursor!;
    for (const sort of ['-priority', '-createdAt', 'updatedAt', 'dueAt']) {
      expectFieldError(await get(`sort=${sort}&cursor=${cursor}`), 'cursor');
    }
    // The default sort is -createdAt: a createdAt cursor does not fit it either.
    expectFieldError(await get(`cursor=${cursor}`), 'cursor');
    expect((await get(`sort=createdAt&cursor=${cursor}`)).statusCode).toBe(200);
  });

  it('a dueAt cursor that points past the null due dates works', async () => {
    // In descending order the null due dates come first; a cursor taken inside them carries 'infinity'.
    const page = (await get('sort=-dueAt&limit=2')).json<PageBody>();
    expect(page.data.every((x) => x.dueAt === null)).toBe(true);
    const decoded = JSON.parse(Buffer.from(page.nextCursor!, 'base64url').toString()) as string[];
    expect(decoded[1]).toBe('infinity');
    expect((await get(`sort=-dueAt&cursor=${page.nextCursor}`)).statusCode).toBe(200);
  });

  const crafted: [string, () => string][] = [
    ['garbage', () => 'not-a-cursor!!'],
    ['base64url of non-JSON', () => Buffer.from('hello world').toString('base64url')],
    ['a JSON object', () => cursorOf({ sort: '-createdAt' })],
    ['a JSON string', () => cursorOf('-createdAt')],
    ['an empty array', () => cursorOf([])],
    ['too few values', () => cursorOf(['-createdAt', '2031-01-01T00:00:00.000Z'])],
    ['too many values', () => cursorOf(['-createdAt', '2031-01-01T00:00:00.000Z', someId(), someId()])],
    ['a number where a value belongs', () => cursorOf(['-createdAt', 1700000000000, someId()])],
    ['null values', () => cursorOf(['-createdAt', null, null])],
    ['a value that is not a date', () => cursorOf(['-createdAt', 'not-a-date', someId()])],
    ['a date with SQL in it', () => cursorOf(['-createdAt', "2031-01-01T00:00:00Z'; drop table tasks; --", someId()])],
    ['an impossible calendar date', () => cursorOf(['-createdAt', '2031-02-30T00:00:00.000Z', someId()])],
    ['an impossible day of a 30-day month', () => cursorOf(['-createdAt', '2031-06-31T00:00:00.000Z', someId()])],
    ['year zero', () => cursorOf(['-createdAt', '0000-01-01T00:00:00.000Z', someId()])],
    ['a value that is not a uuid', () => cursorOf(['-createdAt', '2031-01-01T00:00:00.000Z', 'not-a-uuid'])],
    ['an unknown priority', () => cursorOf(['-priority', 'extreme', '2031-01-01T00:00:00.000Z', someId()])],
  ];
  for (const [name, make] of crafted) {
    it(`${name} is a 400 naming cursor, never a 500`, async () => {
      const cursor = make();
      const sort = name === 'an unknown priority' ? '-priority' : '-createdAt';
      expectFieldError(await get(`sort=${sort}&cursor=${encodeURIComponent(cursor)}`), 'cursor');
    });
  }
});
