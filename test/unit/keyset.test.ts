// Task sorts and keyset positions (src/modules/tasks/sorts.ts, keyset.ts): what a cursor carries
// for each sort, what it must look like before it reaches an SQL cast, and the row comparison the
// next page is. The SQL is rendered with Drizzle's dialect; no database.
import { PgDialect } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { keysetChecks, keysetCondition, keysetOf } from '../../src/modules/tasks/keyset.js';
import { DEFAULT_SORT, parseSort, SORT_KEYS, SORT_PARAMS, TASK_SORTS, type TaskSort } from '../../src/modules/tasks/sorts.js';
import { decodeCursor, encodeCursor } from '../../src/shared/cursor.js';
import { TASK_PRIORITIES } from '../../src/shared/task-model.js';
import { makeTask } from './support/tasks.js';

const created = new Date('2024-03-01T10:00:00.123Z');
const updated = new Date('2024-03-02T11:30:00.000Z');
const due = new Date('2024-04-15T00:00:00.000Z');
const ID = '0192f7a0-0000-7000-8000-0000000000aa';
const task = makeTask({ id: ID, createdAt: created, updatedAt: updated, dueAt: due, priority: 'high' });

/** Whether every value passes the sort's checks, as decodeCursor applies them. */
const passes = (sort: TaskSort, values: string[]) => {
  const checks = keysetChecks(sort);
  return values.length === checks.length && values.every((v, i) => checks[i]!(v));
};

describe('keysetOf', () => {
  it('carries the sort keys of the row, ending in its id', () => {
    expect(keysetOf('createdAt', task).values).toEqual(['2024-03-01T10:00:00.123Z', ID]);
    expect(keysetOf('updatedAt', task).values).toEqual(['2024-03-02T11:30:00.000Z', ID]);
    expect(keysetOf('dueAt', task).values).toEqual(['2024-04-15T00:00:00.000Z', ID]);
    expect(keysetOf('priority', task).values).toEqual(['high', '2024-03-01T10:00:00.123Z', ID]);
  });

  it("an undated task's due key is 'infinity' (undated tasks sort last)", () => {
    expect(keysetOf('dueAt', { ...task, dueAt: null }).values).toEqual(['infinity', ID]);
  });
});

describe('keysetChecks', () => {
  it('accepts every position keysetOf produces, for every sort and priority', () => {
    for (const sort of TASK_SORTS) {
      for (const priority of TASK_PRIORITIES) {
        for (const dueAt of [due, null]) {
          const values = keysetOf(sort, { ...task, priority, dueAt }).values;
          expect(passes(sort, values), `${sort} ${values.join(' ')}`).toBe(true);
        }
      }
    }
  });

  it('accepts the first and last instants PostgreSQL and toISOString agree on', () => {
    expect(passes('createdAt', ['0001-01-01T00:00:00.000Z', ID])).toBe(true);
    expect(passes('createdAt', ['9999-12-31T23:59:59.999Z', ID])).toBe(true);
  });

  it('refuses an impossible date that Date would roll over', () => {
    expect(passes('createdAt', ['2024-02-30T00:00:00.000Z', ID])).toBe(false);
    expect(passes('dueAt', ['2023-02-29T00:00:00.000Z', ID])).toBe(false);
    expect(passes('updatedAt', ['2024-03-01T24:00:00.000Z', ID])).toBe(false);
  });

  it('refuses other spellings of a valid instant: only what toISOString writes', () => {
    for (const v of [
      '2024-03-01T10:00:00Z',
      '2024-03-01T10:00:00.000+00:00',
      '2024-03-01T11:00:00.000+01:00',
      '2024-03-01 10:00:00.000Z',
      '2024-03-01T10:00:00.000z',
      'Fri, 01 Mar 2024 10:00:00 GMT',
      '2024-03-01',
      '1709287200000',
    ]) {
      expect(passes('createdAt', [v, ID]), v).toBe(false);
    }
  });

  it('refuses years PostgreSQL and toISOString disagree on: year 0, negative and five-digit years', () => {
    for (const v of ['0000-01-01T00:00:00.000Z', '-000001-01-01T00:00:00.000Z', '+010000-01-01T00:00:00.000Z']) {
      expect(new Date(v).toISOString(), v).toBe(v); // each is a valid toISOString spelling...
      expect(passes('createdAt', [v, ID]), v).toBe(false); // ...but not a timestamptz to cast
    }
  });

  it("refuses text that is no date at all; 'infinity' only in its exact spelling", () => {
    for (const v of ['', 'now', 'today', '-infinity', 'Infinity', 'NaN', "2024-03-01T10:00:00.000Z'::timestamptz --"]) {
      expect(passes('dueAt', [v, ID]), v).toBe(false);
    }
    expect(passes('dueAt', ['infinity', ID])).toBe(true);
  });

  it('refuses an id that is not a UUID', () => {
    for (const id of ['', '42', ID.slice(0, -1), `${ID}0`, ID.replaceAll('-', ''), ` ${ID}`, 'gggggggg-0000-7000-8000-000000000001']) {
      expect(passes('createdAt', ['2024-03-01T10:00:00.000Z', id]), id).toBe(false);
    }
  });

  it('refuses a priority that is not one of the enum values', () => {
    for (const p of ['critical', 'Medium', 'HIGH', '', 'low ']) {
      expect(passes('priority', [p, '2024-03-01T10:00:00.000Z', ID]), p).toBe(false);
    }
  });

  it('checks each value with its own key: a uuid where a date belongs is refused', () => {
    expect(passes('createdAt', [ID, '2024-03-01T10:00:00.000Z'])).toBe(false);
    expect(passes('priority', ['2024-03-01T10:00:00.000Z', 'high', ID])).toBe(false);
  });

  it('round-trips through a cursor, as the service makes and reads them', () => {
    for (const param of SORT_PARAMS) {
      const { sort } = parseSort(param);
      const values = keysetOf(sort, task).values;
      expect(decodeCursor(encodeCursor(param, values), param, keysetChecks(sort)), param).toEqual(values);
    }
  });
});

describe('sorts', () => {
  it('parseSort: a leading - means descending', () => {
    expect(parseSort('-dueAt')).toEqual({ sort: 'dueAt', descending: true });
    expect(parseSort('dueAt')).toEqual({ sort: 'dueAt', descending: false });
    expect(parseSort('-createdAt')).toEqual({ sort: 'createdAt', descending: true });
    expect(parseSort('priority')).toEqual({ sort: 'priority', descending: false });
    expect(parseSort('-updatedAt')).toEqual({ sort: 'updatedAt', descending: true });
  });

  it('SORT_PARAMS is every sort in both directions, and nothing else', () => {
    const expected = TASK_SORTS.flatMap((s) => [s, `-${s}`]);
    expect([...SORT_PARAMS].sort()).toEqual([...expected].sort());
    for (const param of SORT_PARAMS) expect(TASK_SORTS).toContain(parseSort(param).sort);
    expect(SORT_PARAMS).toContain(DEFAULT_SORT);
    expect(parseSort(DEFAULT_SORT)).toEqual({ sort: 'createdAt', descending: true });
  });

  it('every sort has keys that end in the id (so positions are unique)', () => {
    for (const sort of TASK_SORTS) {
      const keys = SORT_KEYS[sort];
      expect(keys.at(-1)?.pgType, sort).toBe('uuid');
      expect(keys.at(-1)?.value(task), sort).toBe(ID);
    }
  });
});

describe('keysetCondition', () => {
  const dialect = new PgDialect();
  const render = (sort: TaskSort, values: string[], descending: boolean) =>
    dialect.sqlToQuery(keysetCondition(SORT_KEYS[sort], values, descending));

  it("is one row comparison: '<' descending, '>' ascending, each value bound and cast to its key's type", () => {
    const values = ['2024-03-01T10:00:00.123Z', ID];
    expect(render('createdAt', values, true)).toMatchObject({
      sql: '("tasks"."created_at", "tasks"."id") < ($1::timestamptz, $2::uuid)',
      params: values,
    });
    expect(render('createdAt', values, false)).toMatchObject({
      sql: '("tasks"."created_at", "tasks"."id") > ($1::timestamptz, $2::uuid)',
      params: values,
    });
    expect(render('updatedAt', values, true).sql).toBe('("tasks"."updated_at", "tasks"."id") < ($1::timestamptz, $2::uuid)');
  });

  it('dueAt compares over the due index expression, so undated tasks sit at infinity', () => {
    const q = render('dueAt', ['infinity', ID], false);
    expect(q.sql).toBe(`(coalesce("tasks"."due_at", 'infinity'::timestamptz), "tasks"."id") > ($1::timestamptz, $2::uuid)`);
    expect(q.params).toEqual(['infinity', ID]);
  });

  it('priority casts to the enum (declaration order), then created_at and id', () => {
    const q = render('priority', ['high', '2024-03-01T10:00:00.123Z', ID], true);
    expect(q.sql).toBe('("tasks"."priority", "tasks"."created_at", "tasks"."id") < ($1::task_priority, $2::timestamptz, $3::uuid)');
    expect(q.params).toEqual(['high', '2024-03-01T10:00:00.123Z', ID]);
  });

  it('never writes a value into the statement text', () => {
    const hostile = "x'); drop table tasks; --";
    const q = render('createdAt', [hostile, ID], true);
    expect(q.sql).not.toContain(hostile);
    expect(q.sql).not.toContain(ID);
    expect(q.params).toEqual([hostile, ID]);
  });
});
