// Query observation for postgres.js, in one place: telemetry (spans, durations, counts) plugs in
// here as observers instead of wrapping every repository.
import type { Sql, TransactionSql } from 'postgres';
import type { PoolGate } from './pool-gate.js';

/** Called as a statement starts executing; returns what to call when it settles. */
export type QueryObserver = (text: string) => (error: unknown) => void;

interface Executable {
  handle: (...args: unknown[]) => unknown;
}

/**
 * With unnamed statements (prepare false: the PgBouncer mode), no statement is sent on a
 * connection while another is still running there. postgres.js pipelines a statement behind one
 * without parameters (`select pg_current_wal_lsn()`, `select 1`); the one behind it, with
 * parameters, first asks for a description and waits (Parse, Describe, Sync), and PgBouncer 1.18
 * in transaction mode hands the server connection back at the first statement's end: the
 * description's answer is dropped ("got packet from server when not linked") and the statement
 * waits forever. postgres.js moves a connection whose statement's `onexecute` answers false to
 * its full queue until that statement has finished, so the next one goes to a free connection
 * (or waits for one). A transaction's statements are already sent one by one.
 */
const notPipelined = () => false;

/**
 * postgres.js queries are lazy promises that run when first awaited (or executed). Hooking the
 * instance's `handle` sees the real start whichever way the query is consumed (`.values()`,
 * `.execute()`, `await`); Promise.prototype.then observes the outcome without running it twice.
 */
function observed<Q>(query: Q, text: string, observers: readonly QueryObserver[]): Q {
  const q = query as unknown as Executable & Promise<unknown>;
  const original = q.handle.bind(q);
  let started = false;
  q.handle = (...args: unknown[]) => {
    if (!started) {
      started = true;
      const ends = observers.map((o) => o(text));
      void Promise.prototype.then.call(
        q,
        () => ends.forEach((end) => end(undefined)),
        (err: unknown) => ends.forEach((end) => end(err)),
      );
    }
    return original(...args);
  };
  return query;
}

/**
 * Holds the query back until the gate admits it (a free connection within the pool timeout),
 * then lets it run; the connection is given back to the gate when the query settles. A query
 * that waited too long is rejected with the gate's PoolTimeoutError and never sent.
 */
function gated<Q>(query: Q, gate: PoolGate): Q {
  const q = query as unknown as Executable & Promise<unknown> & { reject(err: Error): void };
  const original = q.handle.bind(q);
  let state: 'new' | 'waiting' | 'admitted' = 'new';
  q.handle = (...args: unknown[]) => {
    if (state === 'admitted') return original(...args);
    if (state === 'waiting') return undefined;
    state = 'waiting';
    gate.acquire().then(
      (release) => {
        state = 'admitted';
        void Promise.prototype.then.call(q, release, release);
        return original(...args);
      },
      (err: Error) => q.reject(err),
    );
    return undefined;
  };
  return query;
}

type AnySql = Sql | TransactionSql;

/**
 * A view of the client (or a transaction) whose statements are reported to the observers.
 * `prepare` replaces the per-statement `prepare` option Drizzle passes: Drizzle sends
 * `prepare: false` for every statement it has not been given a name for, which would turn off
 * server-side prepared statements whatever DATABASE_PREPARE says.
 */
export function observeClient<S extends AnySql>(
  client: S,
  observers: readonly QueryObserver[],
  prepare?: boolean,
  gate?: PoolGate,
  /** A transaction's statements: already one after another on their reserved connection. */
  pipelined = false,
): S {
  if (observers.length === 0 && prepare === undefined && gate === undefined) return client;
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') {
        return (text: string, params?: unknown[], options?: Record<string, unknown>) => {
          let opts = prepare === undefined ? options : { ...options, prepare };
          if (prepare === false && !pipelined) opts = { ...opts, onexecute: opts?.onexecute ?? notPipelined };
          const query = (target.unsafe as (...a: unknown[]) => unknown)(text, params, opts);
          const seen = observers.length === 0 ? query : observed(query, text, observers);
          return gate ? gated(seen, gate) : seen;
        };
      }
      if (prop === 'begin') {
        return (...args: unknown[]) => {
          const fn = args[args.length - 1] as (tx: TransactionSql) => unknown;
          // A transaction holds its connection throughout: it passes the gate once, as a whole.
          const wrapped = (tx: TransactionSql) => fn(observeClient(tx, observers, prepare, undefined, true));
          const begin = () => ((target as Sql).begin as (...a: unknown[]) => Promise<unknown>)(...args.slice(0, -1), wrapped);
          if (!gate) return begin();
          return gate.acquire().then((release) => {
            const done = begin();
            done.then(release, release);
            return done;
          });
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

/**
 * The statement's kind and main table, e.g. "select tasks": a bounded label for metrics. A WITH
 * statement that changes data is named after its first change ("insert tasks" for a task written
 * together with its outbox event).
 */
export function operationOf(text: string): string {
  let verb = /^\s*(\w+)/.exec(text)?.[1]?.toLowerCase() ?? 'unknown';
  if (verb === 'with') {
    const change = /\b(insert\s+into|update|delete\s+from)\s+"?([a-z_][a-z0-9_]*)"?/i.exec(text);
    if (change) return `${change[1]!.split(/\s+/)[0]!.toLowerCase()} ${change[2]!.toLowerCase()}`;
    verb = 'select';
  }
  const table = /\b(?:from|into|update)\s+"?([a-z_][a-z0-9_]*)"?/i.exec(text)?.[1]?.toLowerCase();
  return table ? `${verb} ${table}` : verb;
}
