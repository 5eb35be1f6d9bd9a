// Opaque keyset-pagination cursors: base64url of a JSON array [tag, ...values]. Every list in the
// API (tasks, admin tasks, users, notifications, webhooks, deliveries) makes and reads its cursors
// here, and every value is checked before it can reach SQL.
import { badRequest } from './errors.js';
import { isUuid } from './ids.js';

export function encodeCursor(tag: string, values: (string | null)[]): string {
  return Buffer.from(JSON.stringify([tag, ...values])).toString('base64url');
}

/** A check of one cursor value: true when it may be used. */
export type CursorCheck = (value: string) => boolean;

/**
 * Decodes a cursor made for `tag`, with one value per check, each passing its check; anything else
 * is a 400 naming `cursor`.
 */
export function decodeCursor(cursor: string, tag: string, checks: readonly CursorCheck[]): string[] {
  const invalid = (why: string) => badRequest(`cursor is invalid: ${why}`, [{ in: 'query', field: 'cursor', message: why }]);
  const foreign = 'not a cursor returned by this API';
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid(foreign);
  }
  if (!Array.isArray(parsed) || parsed.length !== checks.length + 1 || !parsed.every((v) => typeof v === 'string')) {
    throw invalid(foreign);
  }
  const [t, ...values] = parsed;
  if (t !== tag) throw invalid(`it was issued for another sort order (${t})`);
  if (!values.every((v, i) => checks[i]!(v))) throw invalid(foreign);
  return values;
}

/** A cursor over a list ordered by id alone: one UUID. */
export const encodeIdCursor = (tag: string, last: { id: string }): string => encodeCursor(tag, [last.id]);
export const decodeIdCursor = (cursor: string, tag: string): string => decodeCursor(cursor, tag, [isUuid])[0]!;

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
