// What the fuzzer expects of tasks: the task a create or a patch should acknowledge for its input,
// the order a list sort puts tasks in, and which tasks a list's filters keep. The model is the
// acknowledged tasks themselves: every later read must return them field by field.
import { TASK_PRIORITIES } from '../../../src/shared/task-model.js';
import type { TaskBody } from '../bodies.js';
import { instantOf, isoOf } from './values.js';

export type Json = Record<string, unknown>;

/** A dueAt as sent, as the API should acknowledge it: the instant in toISOString's spelling. */
const dueOf = (v: unknown): string | null | undefined => (v === null ? null : typeof v === 'string' ? ((ms) => (ms === undefined ? undefined : isoOf(ms)))(instantOf(v)) : undefined);

const dedupe = (tags: string[]) => [...new Set(tags)];

/** Differences between an acknowledged task and the input that made it; [] when none. */
export function createDiffs(input: Json, ack: TaskBody): string[] {
  const out: string[] = [];
  const expect = (field: string, want: unknown, got: unknown) => {
    if (JSON.stringify(want) !== JSON.stringify(got)) out.push(`${field}: sent ${JSON.stringify(want)}, acknowledged ${JSON.stringify(got)}`);
  };
  expect('title', input.title, ack.title);
  expect('description', input.description ?? null, ack.description);
  expect('status', input.status ?? 'todo', ack.status);
  expect('priority', input.priority ?? 'medium', ack.priority);
  if (input.dueAt === undefined || input.dueAt === null) expect('dueAt', null, ack.dueAt);
  else {
    const want = dueOf(input.dueAt);
    if (want === undefined) out.push(`dueAt: ${JSON.stringify(input.dueAt)} is not an RFC 3339 instant in years 1-9999, yet was accepted as ${ack.dueAt}`);
    else expect('dueAt', want, ack.dueAt);
  }
  expect('tags', dedupe((input.tags as string[] | undefined) ?? []), ack.tags);
  expect('version', 1, ack.version);
  expect('updatedAt', ack.createdAt, ack.updatedAt);
  expect('completedAt', ack.status === 'done' ? ack.createdAt : null, ack.completedAt);
  return out;
}

/** Differences between a patch's acknowledgement and the task before it with the input applied. */
export function patchDiffs(before: TaskBody, input: Json, ack: TaskBody): string[] {
  const out: string[] = [];
  const expect = (field: string, want: unknown, got: unknown) => {
    if (JSON.stringify(want) !== JSON.stringify(got)) out.push(`${field}: expected ${JSON.stringify(want)}, acknowledged ${JSON.stringify(got)}`);
  };
  expect('id', before.id, ack.id);
  expect('title', input.title ?? before.title, ack.title);
  expect('description', 'description' in input ? input.description : before.description, ack.description);
  expect('status', input.status ?? before.status, ack.status);
  expect('priority', input.priority ?? before.priority, ack.priority);
  if ('dueAt' in input) {
    const want = dueOf(input.dueAt);
    if (want === undefined) out.push(`dueAt: ${JSON.stringify(input.dueAt)} is not an RFC 3339 instant in years 1-9999, yet was accepted as ${ack.dueAt}`);
    else expect('dueAt', want, ack.dueAt);
  } else expect('dueAt', before.dueAt, ack.dueAt);
  expect('tags', input.tags ? dedupe(input.tags as string[]) : before.tags, ack.tags);
  expect('createdAt', before.createdAt, ack.createdAt);
  expect('version', before.version + 1, ack.version);
  if (Date.parse(ack.updatedAt) < Date.parse(before.updatedAt)) out.push(`updatedAt went back: ${before.updatedAt} -> ${ack.updatedAt}`);
  const status = input.status ?? before.status;
  if (input.status === undefined) expect('completedAt', before.completedAt, ack.completedAt);
  else if (status !== 'done') expect('completedAt', null, ack.completedAt);
  else if (before.completedAt !== null) expect('completedAt', before.completedAt, ack.completedAt);
  else if (ack.completedAt === null) out.push('completedAt: null although the task became done');
  return out;
}

/** Field-by-field differences between what a write acknowledged and what a read returned. */
export function fieldDiffs(want: Json, got: Json, fields = Object.keys(want)): string[] {
  return fields.filter((f) => JSON.stringify(want[f]) !== JSON.stringify(got[f])).map((f) => `${f}: acknowledged ${JSON.stringify(want[f])}, read ${JSON.stringify(got[f])}`);
}

// ---- lists

const RANK = new Map<string, number>(TASK_PRIORITIES.map((p, i) => [p, i]));
type Key = (number | string)[];

function keyOf(sort: string, t: TaskBody): Key {
  switch (sort) {
    case 'createdAt':
      return [Date.parse(t.createdAt), t.id];
    case 'updatedAt':
      return [Date.parse(t.updatedAt), t.id];
    case 'dueAt':
      return [t.dueAt === null ? Number.POSITIVE_INFINITY : Date.parse(t.dueAt), t.id];
    case 'priority':
      return [RANK.get(t.priority)!, Date.parse(t.createdAt), t.id];
    default:
      throw new Error(`unknown sort ${sort}`);
  }
}

function compareKeys(a: Key, b: Key): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x < y) return -1;
    if (x > y) return 1;
  }
  return 0;
}

/** The order of `sortParam` ('-' first: descending); the default is -createdAt. */
export function comparator(sortParam = '-createdAt'): (a: TaskBody, b: TaskBody) => number {
  const desc = sortParam.startsWith('-');
  const sort = desc ? sortParam.slice(1) : sortParam;
  return (a, b) => (desc ? -1 : 1) * compareKeys(keyOf(sort, a), keyOf(sort, b));
}

export interface ListFilter {
  status?: string;
  priority?: string;
  tag?: string;
  dueBefore?: string;
  dueAfter?: string;
}

/** Whether a list with these (valid) filters shows the task. */
export function keeps(f: ListFilter, t: TaskBody): boolean {
  if (f.status !== undefined && !f.status.split(',').includes(t.status)) return false;
  if (f.priority !== undefined && !f.priority.split(',').includes(t.priority)) return false;
  if (f.tag !== undefined && !t.tags.includes(f.tag)) return false;
  const due = t.dueAt === null ? Number.POSITIVE_INFINITY : Date.parse(t.dueAt);
  // Exact comparisons with the bound as sent: for millisecond values, its next millisecond up.
  if (f.dueBefore !== undefined && !(due < instantOf(f.dueBefore, 'ceil')!)) return false;
  if (f.dueAfter !== undefined && (t.dueAt === null || due < instantOf(f.dueAfter, 'ceil')!)) return false;
  return true;
}
