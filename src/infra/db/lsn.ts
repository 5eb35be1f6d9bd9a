// PostgreSQL WAL positions (pg_lsn, written "16/B374D848"): 64-bit, compared as numbers.

/** The position as a bigint; undefined for null or anything that is not an LSN. */
export function parseLsn(text: string | null | undefined): bigint | undefined {
  if (text === null || text === undefined) return undefined;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) return undefined;
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** PostgreSQL's spelling, e.g. 16/B374D848. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * Fixed-width lowercase hex (16 digits): two of these compare as strings the way the positions
 * compare as numbers, which is how the Redis script keeps the larger of two (Lua numbers are
 * doubles and cannot hold 64 bits).
 */
export const lsnKey = (lsn: bigint) => lsn.toString(16).padStart(16, '0');

export function parseLsnKey(text: string | null | undefined): bigint | undefined {
  return typeof text === 'string' && /^[0-9a-f]{16}$/.test(text) ? BigInt(`0x${text}`) : undefined;
}

/** Larger than any position a server will reach: "read this user's data on the primary". */
export const PRIMARY_ONLY = (1n << 64n) - 1n;
