import { randomBytes } from 'node:crypto';

/**
 * RFC 9562 UUIDv7: time-ordered, so new rows land at the right edge of the primary-key index.
 * Given `entropy` (16 bytes; the first 6 are overwritten by the time), the same inputs make the
 * same id: how a retried create finds the row its first try made (src/http/idempotency.ts).
 */
export function uuidv7(now = Date.now(), entropy: Buffer = randomBytes(16)): string {
  const b = Buffer.from(entropy.subarray(0, 16));
  if (b.length < 16) throw new Error('uuidv7: 16 bytes of entropy needed');
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A UUID in its canonical spelling (any version): 8-4-4-4-12 lowercase hex, as PostgreSQL and
 * uuidv7 write it and the API returns it. Only this one is accepted, so that every id a service
 * passes on (to a query, a cache key, the sessions to end) is spelled as the database spells it,
 * and each resource has one URL.
 */
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const UUID_RE = new RegExp(UUID_PATTERN);

export const isUuid = (value: string): boolean => UUID_RE.test(value);
