// HTTP conditional requests (RFC 9110 section 13) over a resource's integer version.
import type { Precondition } from '../shared/precondition.js';

export const etagOf = (version: number) => `"${version}"`;

const tags = (header: string) => header.split(',').map((t) => t.trim()).filter(Boolean);

/** If-Match uses the strong comparison: a weak tag never matches. */
export function parseIfMatch(header: string | undefined): Precondition {
  if (header === undefined) return undefined;
  const list = tags(header);
  if (list.includes('*')) return '*';
  return list.flatMap((t) => {
    const m = /^"(\d{1,9})"$/.exec(t);
    return m ? [Number(m[1])] : [];
  });
}

/** If-None-Match uses the weak comparison. */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return tags(header).some((t) => t === '*' || t.replace(/^W\//, '') === etag);
}
