// Statement labels for metrics and spans: bounded (verb and main table), never the statement.
import { describe, expect, it } from 'vitest';
import { operationOf } from '../../src/infra/db/observe.js';

describe('operationOf', () => {
  it.each([
    ['select "id" from "tasks" where "user_id" = $1', 'select tasks'],
    ['insert into "outbox" ("id") values ($1)', 'insert outbox'],
    ['update "tasks" set "title" = $1', 'update tasks'],
    ['delete from "outbox" where "id" in ($1)', 'delete outbox'],
    // A task and its event in one statement: named after the task insert.
    ['with "inserted" as (insert into "tasks" ("id") values ($1) returning "id") insert into "outbox" ("id") values ($2)', 'insert tasks'],
    ['with recent as (select 1 from "users") select * from recent', 'select users'],
    ['begin', 'begin'],
  ])('%s -> %s', (text, label) => {
    expect(operationOf(text)).toBe(label);
  });
});
