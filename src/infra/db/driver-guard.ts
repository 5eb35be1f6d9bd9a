// A guard for one known defect of postgres.js 3.4.9 (porsager/postgres#1192, #1205, #1223, open):
// on every new connection it runs a catalogue query for the array types from a socket handler and
// drops that query's promise. When the connection is lost during that query (PgBouncer or the
// database restarting, seen here on `cluster restart pgbouncer`), the rejection reaches no one and
// Node ends the process on the unhandled rejection: every instance behind the pooler died at once.
//
// The guard recognises exactly that rejection (an error carrying the driver's catalogue query)
// and reports it instead; the driver reconnects on the next statement as after any lost
// connection. Every other unhandled rejection still ends the process, as Node's default does.
// `fetch_types: false` would avoid the query, but then text[] arrives in its text form, which
// Drizzle's array parser reads wrongly (a backslash in a tag is lost; test/integration/tasks-list).

/** The driver's own array-types query (postgres/src/connection.js fetchArrayTypes). */
const ARRAY_TYPES_QUERY = /from pg_catalog\.pg_type a\s+left join pg_catalog\.pg_type b on b\.oid = a\.typelem/;

/** Whether the rejection is the driver's dropped array-types query failing. */
export function isDroppedArrayTypesQuery(reason: unknown): boolean {
  if (!reason || typeof reason !== 'object') return false;
  const query = Object.getOwnPropertyDescriptor(reason, 'query')?.value as unknown;
  return typeof query === 'string' && ARRAY_TYPES_QUERY.test(query);
}

export type DriverWarn = (obj: object, msg: string) => void;

let installed: { warn: DriverWarn } | undefined;

/**
 * Installs the guard once per process (later calls only replace where it reports). Idempotent,
 * so that every database a process opens may call it.
 */
export function guardDriverRejections(warn: DriverWarn): void {
  if (installed) {
    installed.warn = warn;
    return;
  }
  const state = { warn };
  installed = state;
  process.on('unhandledRejection', (reason) => {
    if (isDroppedArrayTypesQuery(reason)) {
      const err = reason as { code?: unknown; message?: unknown };
      state.warn({ code: err.code, err: String(err.message) }, 'postgres.js: a new connection was lost during its array-types query (porsager/postgres#1192); it reconnects on the next statement');
      return;
    }
    // Node's default for every other unhandled rejection: end the process with it.
    throw reason;
  });
}
