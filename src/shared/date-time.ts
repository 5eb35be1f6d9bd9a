// The date-times the API accepts, and the instant each names, read without Date's parser: Date
// reads '0050-06-01 00:00:00Z' as 1950, takes '2024-01-01\u300010:00:00Z' (an ideographic
// space) as a separator, and rolls 2024-02-30 over into March.

/**
 * RFC 3339 section 5.6: a 'T' (or 't', or a space, as section 5.6 allows) between date and time,
 * 'Z' or a numeric offset (±hh:mm; ±hhmm is taken too), any number of fraction digits.
 */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):?(\d{2}))$/;

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * The instant an RFC 3339 date-time names, or undefined when the text is not one: a real calendar
 * date, hours 00-23, no leap second (23:59:60 has no Date and no PostgreSQL value of its own), an
 * offset within ±23:59, and an instant in years 0001 to 9999 UTC (what PostgreSQL and
 * toISOString both write as four digits). Timestamps are stored with millisecond precision:
 * fraction digits past the millisecond are dropped ('floor', for a value to store), or, for a
 * bound to compare stored values with, round up to the next millisecond when any is not zero
 * ('ceil': a stored t < 10:00:00.0005 exactly when t < 10:00:00.001, and t >= it when t >= that).
 */
export function parseDateTime(text: string, rounding: 'floor' | 'ceil' = 'floor'): Date | undefined {
  const m = DATE_TIME.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const days = month === 2 && isLeap(year) ? 29 : DAYS[month - 1];
  if (days === undefined || day < 1 || day > days || hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[8] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const fraction = m[7] ?? '';
  const ms = Number(fraction.slice(0, 3).padEnd(3, '0'));
  const local = new Date(0);
  local.setUTCFullYear(year, month - 1, day); // not Date.UTC, which reads years 0-99 as 1900-1999
  local.setUTCHours(hour, minute, second, ms);
  const instant = new Date(local.getTime() - offsetMinutes * 60_000);
  const utcYear = instant.getUTCFullYear();
  if (utcYear < 1 || utcYear > 9999) return undefined;
  return rounding === 'ceil' && /[1-9]/.test(fraction.slice(3)) ? new Date(instant.getTime() + 1) : instant;
}
