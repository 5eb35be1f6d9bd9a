// PostgreSQL error codes, read from the driver's error or from the one Drizzle wraps.
export function pgErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export const isUniqueViolation = (err: unknown) => pgErrorCode(err) === '23505';
export const isForeignKeyViolation = (err: unknown) => pgErrorCode(err) === '23503';
export const isNotNullViolation = (err: unknown) => pgErrorCode(err) === '23502';

/**
 * Errors of the driver (postgres.js) and the socket when no usable connection can be had. Not
 * CONNECTION_ENDED or CONNECTION_DESTROYED: those mean this process closed its own pool.
 */
const CONNECTION_CODES = new Set([
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'POOL_TIMEOUT', // src/infra/db/pool-gate.ts: no connection became free within pool_timeout
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * The database (or the PgBouncer in front of it) cannot serve the statement now: the connection
 * was refused, lost or timed out, the server is shutting down or starting, it has no connection
 * slot left, or PgBouncer gave up waiting for a server connection. Retrying later can succeed,
 * so the API answers 503 with Retry-After rather than 500.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (CONNECTION_CODES.has(code)) return true;
      // 08: connection exception (PgBouncer reports its own failures as 08P01); 57P01-57P03:
      // admin shutdown, crash shutdown, cannot connect now (starting up or in recovery);
      // 53300: too many connections.
      if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || code === '53300') return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
