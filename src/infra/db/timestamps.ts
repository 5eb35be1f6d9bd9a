// Reading timestamptz values. PostgreSQL writes one as text in the session's time zone
// ('2024-06-01 02:00:00.5+02', '0050-06-01 00:00:00+00', '1850-01-01 00:09:21+00:09:21' under
// Europe/Paris), and Drizzle's timestamp columns hand that text to Date's parser (with either
// driver: both pass timestamptz through as text for Drizzle to read), which misreads it: years
// 0001-0099 come back as 1900-1999 or 2000-2049 (0013-0031 not at all: an Invalid Date, and a 500
// on every later read), and an offset with seconds (local mean time, before ~1900) not at all.
// This reads the text exactly, whatever the years and the session's time zone.

/** DateStyle ISO, the default of PostgreSQL and the only one the drivers expect. */
const PG_TIMESTAMPTZ = /^(\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?([+-])(\d{2})(?::(\d{2}))?(?::(\d{2}))?( BC)?$/;

/** The instant of PostgreSQL's timestamptz text (anything else, 'infinity' too, as Date reads it). */
export function readTimestamptz(text: string): Date {
  const m = PG_TIMESTAMPTZ.exec(text);
  if (!m) return new Date(text);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Number((m[7] ?? '').slice(0, 3).padEnd(3, '0'));
  const offsetSeconds = (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0));
  const local = new Date(0);
  local.setUTCFullYear(m[12] ? 1 - year : year, month - 1, day); // not Date.UTC, which reads years 0-99 as 1900-1999
  local.setUTCHours(hour, minute, second, ms);
  return new Date(local.getTime() - offsetSeconds * 1000);
}
