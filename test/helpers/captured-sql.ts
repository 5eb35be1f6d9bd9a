// Every statement a piece of code sends, with its parameters: a Drizzle database over a
// postgres.js client built the way src/infra/db/database.ts builds the API's (observeClient with
// the query observers), whose `debug` hook records each statement as it is sent (the way
// bench/sql-capture.ts records an endpoint's SQL). The production observer sees the same
// statements; `take` returns both so that a test can check that nothing escaped either.
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { Db } from '../../src/infra/db/database.js';
import { observeClient, type QueryObserver } from '../../src/infra/db/observe.js';

export interface CapturedStatement {
  text: string;
  /** The parameters as sent (postgres.js serialises them to text); null for SQL NULL. */
  params: (string | null)[];
}

export interface SqlCapture {
  db: Db;
  /**
   * The statements sent since the last take (transaction control left out: BEGIN and COMMIT
   * are sent by the driver itself), and the texts the query observer saw in that time.
   */
  take(): { statements: CapturedStatement[]; observed: string[] };
  close(): Promise<void>;
}

/** Transaction control, which the driver sends itself (begin) or Drizzle sends for savepoints. */
export const CONTROL = /^\s*(begin|commit|rollback|savepoint|release|start transaction)\b/i;

export async function openCapturingDb(url: string, opts: { prepare?: boolean } = {}): Promise<SqlCapture> {
  let sent: CapturedStatement[] = [];
  let observed: string[] = [];
  const pool = postgres(url, {
    max: 1,
    prepare: opts.prepare ?? true,
    onnotice: () => undefined,
    debug: (_connection: number, text: string, params: unknown[]) => {
      sent.push({ text, params: params.map((p) => (p === null || p === undefined ? null : String(p as string))) });
    },
  });
  const observer: QueryObserver = (text) => {
    observed.push(text);
    return () => undefined;
  };
  const client = observeClient(pool, [observer], opts.prepare ?? true);
  const db = drizzle(client) as unknown as Db;
  // The connection's first statement also fetches the array types (postgres.js fetch_types):
  // sent here, before anything is recorded.
  await client.unsafe('select 1');
  sent = [];
  observed = [];
  return {
    db,
    take() {
      const out = { statements: sent.filter((s) => !CONTROL.test(s.text)), observed: observed.filter((t) => !CONTROL.test(t)) };
      sent = [];
      observed = [];
      return out;
    },
    close: () => pool.end({ timeout: 5 }),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading a statement's user key. No SQL parser is a dependency of the project, so this is a
// small reader of the SQL Drizzle writes: string literals masked, parentheses counted, clauses
// found at their own level. What it cannot read it reports as a problem (it never passes a
// statement it did not understand).

/** How a part of a statement picks the rows of one user. */
export type UserKey =
  /** `user_id = $n` among the WHERE's top-level AND conditions. */
  | { kind: 'eq'; values: (string | null)[] }
  /** `user_id IN ($a, $b, ...)` among them: several users. */
  | { kind: 'in'; values: (string | null)[] }
  /** An INSERT's user_id value: a parameter in every row. */
  | { kind: 'value'; values: (string | null)[] }
  /** An INSERT's user_id value read from a WITH query of the same statement (`(select user_id from cte)`). */
  | { kind: 'derived'; via: string; values: (string | null)[] }
  /** None of the above. */
  | { kind: 'none' };

/** One SELECT, INSERT, UPDATE or DELETE of a statement: the main one, a WITH query, a subquery. */
export interface StatementPart {
  verb: 'select' | 'insert' | 'update' | 'delete' | 'unknown';
  /** Where it sits: 'main', 'with "counted"', 'subquery 1 of main'. */
  where: string;
  /** The tables it reads or writes (WITH queries' names left out), lower case, unquoted. */
  tables: string[];
  key: UserKey;
  /** ON CONFLICT's target columns, when the INSERT has one. */
  conflictTarget?: string[];
  /** What the reader could not read, or what no sharded table may do (move a row to another user). */
  problems: string[];
  text: string;
}

const normalise = (text: string) => text.replace(/\s+/g, ' ').trim().replace(/;$/, '');

/** The text with the insides of string literals blanked (same length), so that no keyword is found in them. */
function maskLiterals(s: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (inString) {
      if (c === "'" && s[i + 1] === "'") {
        out += '__';
        i++;
      } else if (c === "'") {
        inString = false;
        out += c;
      } else out += '_';
    } else {
      if (c === "'") inString = true;
      out += c;
    }
  }
  return out;
}

/** Parenthesis depth before each character of a masked text (double-quoted identifiers hold no parentheses in Drizzle's SQL). */
function depths(masked: string): number[] {
  const d: number[] = [];
  let depth = 0;
  for (const c of masked) {
    if (c === ')') depth--;
    d.push(depth);
    if (c === '(') depth++;
  }
  d.push(depth); // the end of the text: where `$` matches
  return d;
}

/** Index of the parenthesis closing the one at `open`, or -1. */
function closing(masked: string, open: number): number {
  let depth = 0;
  for (let i = open; i < masked.length; i++) {
    if (masked[i] === '(') depth++;
    else if (masked[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

/** The top-level matches of `re` (which must be global) in `s`. */
function topLevel(s: string, re: RegExp): RegExpExecArray[] {
  const masked = maskLiterals(s);
  const d = depths(masked);
  return [...masked.matchAll(re)].filter((m) => d[m.index] === 0);
}

function splitTop(s: string, sep: RegExp): string[] {
  const parts: string[] = [];
  let from = 0;
  for (const m of topLevel(s, sep)) {
    parts.push(s.slice(from, m.index));
    from = m.index + m[0].length;
  }
  parts.push(s.slice(from));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

/** `((a and b))` -> `a and b`: parentheses that wrap the whole text. */
function unwrap(s: string): string {
  let t = s.trim();
  while (t.startsWith('(') && closing(maskLiterals(t), 0) === t.length - 1) t = t.slice(1, -1).trim();
  return t;
}

/** The text up to the first top-level match of `ends`. */
function upTo(s: string, ends: RegExp): string {
  const [end] = topLevel(s, new RegExp(ends.source, 'gi'));
  return s.slice(0, end ? end.index : undefined).trim();
}

/** The text between the top-level keyword `start` and the first top-level keyword of `ends` after it. */
function clause(s: string, start: RegExp, ends: RegExp): string | undefined {
  const [m] = topLevel(s, new RegExp(start.source, 'gi'));
  return m ? upTo(s.slice(m.index + m[0].length), ends) : undefined;
}

const ident = (s: string) => s.trim().replace(/^"?public"?\./i, '').replace(/"/g, '').toLowerCase();
const USER_ID = /^(?:"?(\w+)"?\.)?"?user_id"?$/i;
const PARAM = /^\$(\d+)(?:::uuid)?$/i;

/** The user key of a WHERE condition for `table`: one of its top-level AND conditions, and no top-level OR. */
function keyOfCondition(cond: string, table: string, params: (string | null)[]): UserKey {
  const whole = unwrap(cond);
  if (topLevel(whole, /\sor\s/gi).length > 0) return { kind: 'none' };
  const param = (p: string) => params[Number(PARAM.exec(p)![1]) - 1] ?? null;
  const onTable = (col: string) => {
    const m = USER_ID.exec(col.trim());
    return m !== null && (m[1] === undefined || m[1].toLowerCase() === table);
  };
  for (const c of splitTop(whole, /\sand\s/gi).map(unwrap)) {
    const eq = /^(.+?)\s*=\s*(.+)$/.exec(c);
    if (eq) {
      const [l, r] = [eq[1]!.trim(), eq[2]!.trim()];
      if (onTable(l) && PARAM.test(r)) return { kind: 'eq', values: [param(r)] };
      if (onTable(r) && PARAM.test(l)) return { kind: 'eq', values: [param(l)] };
    }
    const inList = /^(.+?)\s+in\s+\((.+)\)$/i.exec(c);
    if (inList && onTable(inList[1]!)) {
      const items = splitTop(inList[2]!, /,/g);
      if (items.every((i) => PARAM.test(i))) return { kind: 'in', values: items.map(param) };
    }
  }
  return { kind: 'none' };
}

/** Assignments of a SET list to user_id: a row would move to another user (and shard). */
function setsUserId(set: string | undefined): boolean {
  return set !== undefined && splitTop(set, /,/g).some((a) => /^"?user_id"?\s*=/i.test(a));
}

/**
 * The parts of one statement and their user keys. `params` are the statement's parameters as
 * sent, so that a key's values are the users' ids themselves.
 */
export function readStatement(text: string, params: (string | null)[] = []): StatementPart[] {
  const parts: StatementPart[] = [];
  const ctes = new Map<string, StatementPart>();
  let main = normalise(text);
  if (/^with\s/i.test(main)) {
    let rest = main.replace(/^with\s+(recursive\s+)?/i, '');
    for (;;) {
      const head = /^("[^"]+"|\w+)\s+as\s+(?:not\s+)?(?:materialized\s+)?\(/i.exec(rest);
      if (!head) return [unreadable(text, 'a WITH query the reader cannot follow')];
      const open = head[0].length - 1;
      const close = closing(maskLiterals(rest), open);
      if (close < 0) return [unreadable(text, 'unbalanced parentheses')];
      const name = ident(head[1]!);
      const body = rest.slice(open + 1, close);
      const read = readPart(body, `with "${name}"`, params, ctes, parts);
      ctes.set(name, read);
      rest = rest.slice(close + 1).trim();
      if (rest.startsWith(',')) rest = rest.slice(1).trim();
      else break;
    }
    main = rest;
  }
  readPart(main, 'main', params, ctes, parts);
  return parts;
}

function unreadable(text: string, why: string): StatementPart {
  return { verb: 'unknown', where: 'main', tables: [], key: { kind: 'none' }, problems: [`the reader cannot read this statement (${why}): extend it`], text };
}

/** Reads one SELECT/INSERT/UPDATE/DELETE; its parenthesised subqueries are read first, as parts of their own. */
function readPart(raw: string, where: string, params: (string | null)[], ctes: Map<string, StatementPart>, out: StatementPart[]): StatementPart {
  // Subqueries: each `(select ...)` at any depth (the outermost ones; theirs are read in turn),
  // replaced by a token in this part's text.
  const subs: StatementPart[] = [];
  let text = raw.trim();
  for (;;) {
    const masked = maskLiterals(text);
    const m = /\(\s*select\s/i.exec(masked);
    if (!m) break;
    const close = closing(masked, m.index);
    if (close < 0) break;
    const sub = readPart(text.slice(m.index + 1, close), `subquery ${subs.length + 1} of ${where}`, params, ctes, out);
    subs.push(sub);
    text = `${text.slice(0, m.index)}(?sub${subs.length - 1})${text.slice(close + 1)}`;
  }
  const verb = (/^(\w+)/.exec(text)?.[1] ?? '').toLowerCase();
  const part: StatementPart = { verb: 'unknown', where, tables: [], key: { kind: 'none' }, problems: [], text: normalise(raw) };
  const notCte = (t: string) => !ctes.has(t);
  const tableList = (from: string | undefined) =>
    from === undefined
      ? []
      : splitTop(from, /,|\s(?:(?:inner|left|right|full|cross)\s+)?(?:outer\s+)?join\s/gi)
          .map((t) => /^("[^"]+"|[\w.]+)/.exec(t.trim())?.[1])
          .filter((t): t is string => t !== undefined && !t.startsWith('(?sub'))
          .map(ident)
          .filter(notCte);
  const whereOf = (ends: RegExp) => clause(text, /\swhere\s/, ends);
  switch (verb) {
    case 'select': {
      part.verb = 'select';
      part.tables = tableList(clause(text, /\sfrom\s/, /\s(?:where|group\s+by|order\s+by|limit|offset|for|having|window|union)\s|$/));
      const cond = whereOf(/\s(?:group\s+by|order\s+by|limit|offset|for|having|window|union)\s|$/);
      if (part.tables.length > 1) part.problems.push('a join: the reader checks one table per part');
      if (cond !== undefined && part.tables[0]) part.key = keyOfCondition(cond, part.tables[0], params);
      break;
    }
    case 'update':
    case 'delete': {
      part.verb = verb;
      const target = verb === 'update' ? /^update\s+(?:only\s+)?("[^"]+"|[\w.]+)/i.exec(text) : /^delete\s+from\s+(?:only\s+)?("[^"]+"|[\w.]+)/i.exec(text);
      if (!target) {
        part.problems.push(`the reader cannot find the ${verb}'s table: extend it`);
        break;
      }
      part.tables = [ident(target[1]!)];
      if (/\s(?:from|using)\s/i.test(text.slice(target[0].length).split(/\swhere\s/i)[0]!)) part.problems.push(`an ${verb} with FROM/USING: the reader checks one table per part`);
      const cond = whereOf(/\s(?:returning)\s|$/);
      if (cond !== undefined) part.key = keyOfCondition(cond, part.tables[0]!, params);
      if (verb === 'update' && setsUserId(clause(text, /\sset\s/, /\s(?:from|where|returning)\s|$/))) part.problems.push('assigns user_id: a row would move to another user');
      break;
    }
    case 'insert': {
      part.verb = 'insert';
      const head = /^insert\s+into\s+("[^"]+"|[\w.]+)(?:\s+as\s+\S+)?\s*\(/i.exec(text);
      if (!head) {
        part.problems.push('an INSERT without a column list: the reader cannot find user_id');
        break;
      }
      part.tables = [ident(head[1]!)];
      const open = head[0].length - 1;
      const close = closing(maskLiterals(text), open);
      const columns = splitTop(text.slice(open + 1, close), /,/g).map(ident);
      let rest = text.slice(close + 1).trim();
      if (!/^values\s*\(/i.test(rest)) {
        part.problems.push('INSERT ... SELECT: the reader cannot follow user_id into the rows');
        break;
      }
      rest = rest.replace(/^values\s*/i, '');
      const rows: string[][] = [];
      while (rest.startsWith('(')) {
        const end = closing(maskLiterals(rest), 0);
        rows.push(splitTop(rest.slice(1, end), /,/g));
        rest = rest.slice(end + 1).trim();
        if (rest.startsWith(',')) rest = rest.slice(1).trim();
        else break;
      }
      const at = columns.indexOf('user_id');
      if (at >= 0 && rows.length > 0 && rows.every((r) => r.length === columns.length)) {
        const values = rows.map((r) => r[at]!);
        if (values.every((v) => PARAM.test(v))) {
          part.key = { kind: 'value', values: values.map((v) => params[Number(PARAM.exec(v)![1]) - 1] ?? null) };
        } else if (values.length === 1 && /^\(\?sub(\d+)\)$/.test(values[0]!)) {
          // `(select user_id from cte)`: the value of a WITH query of the same statement, keyed itself.
          // `(select cte.user_id from cte, other)` too: a cross join with other WITH queries can
          // only leave the value out (the shard router's bucket hold), never change it.
          const sub = subs[Number(/^\(\?sub(\d+)\)$/.exec(values[0]!)![1])]!;
          const joined = /^select\s+(?:("[^"]+"|\w+)\.)?"?user_id"?\s+from\s+("[^"]+"|\w+)((?:\s*,\s*(?:"[^"]+"|\w+))*)$/i.exec(sub.text);
          const others = joined?.[3] ? joined[3].split(',').map((t) => ident(t.trim())).filter(Boolean) : [];
          const fits = joined !== null && (joined[1] === undefined || ident(joined[1]) === ident(joined[2]!)) && others.every((o) => ctes.has(o));
          const from = fits ? [joined[0], joined[2]] : null;
          const cte = from ? ctes.get(ident(from[1]!)) : undefined;
          if (cte && cte.key.kind !== 'none' && cte.key.kind !== 'in' && cte.key.values.length === 1) {
            part.key = { kind: 'derived', via: ident(from![1]!), values: cte.key.values };
          }
        }
      }
      const conflict = /^on\s+conflict\s*(?:\(([^)]*)\))?\s*(on\s+constraint\s+\S+\s*)?do\s+(nothing|update\s+set\s+(.*))/i.exec(rest);
      if (conflict) {
        if (conflict[2]) part.problems.push('ON CONFLICT ON CONSTRAINT: the reader cannot see the target columns');
        else if (conflict[1] !== undefined) part.conflictTarget = splitTop(conflict[1], /,/g).map(ident);
        if (conflict[4] !== undefined && setsUserId(upTo(conflict[4], /\s(?:where|returning)\s|$/))) {
          part.problems.push('ON CONFLICT DO UPDATE assigns user_id: a row would move to another user');
        }
      } else if (!/^(returning\s.*)?$/i.test(rest)) part.problems.push(`the reader cannot read what follows the VALUES: ${rest.slice(0, 60)}`);
      break;
    }
    default:
      part.problems.push(`a statement of kind '${verb}': the reader knows SELECT, INSERT, UPDATE, DELETE and WITH`);
  }
  out.push(part);
  return part;
}
