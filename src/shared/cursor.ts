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
