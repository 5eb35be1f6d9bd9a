// The pool parameters a DATABASE_URL may carry in Prisma's spelling (the seed's
// `?connection_limit=100&pool_timeout=10&connect_timeout=10`), read and stripped from the URL
// before postgres.js sees it: postgres.js would send every query parameter it does not know to
// the server as a startup parameter, which PostgreSQL and PgBouncer refuse.
//
//   connection_limit  -> the pool's size (postgres.js `max`)
//   pool_timeout      -> how long a statement (or a transaction) may wait for a free connection,
//                        in seconds; 0: as long as it takes (postgres.js has no such limit; the
//                        database port enforces it, src/infra/db/pool-gate.ts)
//   connect_timeout   -> seconds to open a connection (postgres.js `connect_timeout`); 0: no limit
//   pgbouncer=true    -> no named prepared statements (what DATABASE_PREPARE=false does)
//   schema=public     -> accepted and dropped (the tables live in public)

export interface DatabaseUrl {
  /** The URL without the parameters below, as postgres.js should receive it. */
  url: string;
  connectionLimit?: number;
  poolTimeoutSeconds?: number;
  connectTimeoutSeconds?: number;
  /** pgbouncer=true: statements must not be prepared by name. */
  pgbouncer?: boolean;
}

/** Prisma parameters that have no equivalent here: refused rather than sent to the server. */
const UNSUPPORTED = ['socket_timeout', 'statement_cache_size', 'sslaccept', 'sslidentity', 'sslpassword', 'sslcert'];

function integer(name: string, raw: string, min: number, max: number, problems: string[]): number | undefined {
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    problems.push(`${name}: must be an integer between ${min} and ${max} (got ${raw})`);
    return undefined;
  }
  return Number(raw);
}

/**
 * Splits the pool parameters off a postgres:// URL. `variable` names the setting in problems
 * (e.g. "DATABASE_URL connection_limit: ..."). Everything else of the URL is kept verbatim.
 */
export function parseDatabaseUrl(raw: string, variable: string, problems: string[]): DatabaseUrl {
  const q = raw.indexOf('?');
  if (q < 0) return { url: raw };
  const hashAt = raw.indexOf('#', q);
  const query = raw.slice(q + 1, hashAt < 0 ? undefined : hashAt);
  const params = new URLSearchParams(query);
  const out: DatabaseUrl = { url: raw };
  const take = (name: string): string | undefined => {
    const values = params.getAll(name);
    params.delete(name);
    if (values.length > 1) problems.push(`${variable} ${name}: given ${values.length} times`);
    return values[values.length - 1];
  };
  const limit = take('connection_limit');
  if (limit !== undefined) out.connectionLimit = integer(`${variable} connection_limit`, limit, 1, 1000, problems);
  const pool = take('pool_timeout');
  if (pool !== undefined) out.poolTimeoutSeconds = integer(`${variable} pool_timeout`, pool, 0, 3600, problems);
  const connect = take('connect_timeout');
  if (connect !== undefined) out.connectTimeoutSeconds = integer(`${variable} connect_timeout`, connect, 0, 3600, problems);
  const pgbouncer = take('pgbouncer');
  if (pgbouncer !== undefined) {
    if (pgbouncer === 'true' || pgbouncer === 'false') out.pgbouncer = pgbouncer === 'true';
    else problems.push(`${variable} pgbouncer: must be true or false (got ${pgbouncer})`);
  }
  const schema = take('schema');
  if (schema !== undefined && schema !== 'public') {
    problems.push(`${variable} schema: only public is supported (the migrations create the tables there), got ${schema}`);
  }
  for (const name of UNSUPPORTED) {
    if (params.has(name)) problems.push(`${variable} ${name}: a Prisma parameter this driver does not support; remove it`);
  }
  const rest = params.toString();
  out.url = raw.slice(0, q) + (rest ? `?${rest}` : '') + (hashAt < 0 ? '' : raw.slice(hashAt));
  return out;
}

/**
 * DATABASE_READ_URLS: comma-separated postgres:// URLs. A comma splits only where the next URL
 * begins, so one URL may still name several hosts (postgres://u@h1:5432,h2:5432/db).
 */
export function splitUrls(raw: string): string[] {
  return raw
    .split(/,(?=\s*(?:postgres(?:ql)?:\/\/|$))/)
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
}
