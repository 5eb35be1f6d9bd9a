// Opaque keyset-pagination cursors: base64url of a JSON array [tag, ...values].
import { badRequest } from './errors.js';

export function encodeCursor(tag: string, values: (string | null)[]): string {
  return Buffer.from(JSON.stringify([tag, ...values])).toString('base64url');
}

/** Decodes a cursor made for `tag` with `arity` values; anything else is a 400 naming `cursor`. */
export function decodeCursor(cursor: string, tag: string, arity: number): string[] {
  const invalid = (why: string) => badRequest(`cursor is invalid: ${why}`, [{ in: 'query', field: 'cursor', message: why }]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid('not a cursor returned by this API');
  }
  if (!Array.isArray(parsed) || parsed.length !== arity + 1 || !parsed.every((v) => typeof v === 'string')) {
    throw invalid('not a cursor returned by this API');
  }
  const [t, ...values] = parsed;
  if (t !== tag) throw invalid(`it was issued for another sort order (${t})`);
  return values;
}

/** One page of a keyset-paginated list. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/**
 * Lists fetch limit + 1 rows: the extra row only says another page exists, and the cursor is
 * made from the last row shown.
 */
export function pageOf<T>(rows: T[], limit: number, cursorOf: (last: T) => string): Page<T> {
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return { data, nextCursor: rows.length > limit && last !== undefined ? cursorOf(last) : null };
}
