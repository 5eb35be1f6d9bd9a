// The date-times the API accepts and the instant each names (src/shared/date-time.ts), and how
// timestamptz text from PostgreSQL is read back (src/infra/db/timestamps.ts): regressions the
// fuzzer found, where Date's parser read another date than the one sent or stored.
import { describe, expect, it } from 'vitest';
import { parseDateTime } from '../../src/shared/date-time.js';
import { readTimestamptz } from '../../src/infra/db/timestamps.js';
import { ts } from '../../src/infra/db/columns.js';
import { pgTable } from 'drizzle-orm/pg-core';

const iso = (s: string) => parseDateTime(s)?.toISOString();

describe('parseDateTime', () => {
  it.each([
    ['2024-01-01T10:00:00Z', '2024-01-01T10:00:00.000Z'],
    ['2024-01-01t10:00:00z', '2024-01-01T10:00:00.000Z'],
    ['2024-01-01 10:00:00+01:00', '2024-01-01T09:00:00.000Z'],
    ['2024-01-01T10:00:00-0130', '2024-01-01T11:30:00.000Z'],
    ['2024-02-29T23:59:59.999+23:59', '2024-02-29T00:00:59.999Z'],
    ['2024-01-01T10:00:00.1234567890123456789Z', '2024-01-01T10:00:00.123Z'],
    ['2024-01-01T10:00:00.9999Z', '2024-01-01T10:00:00.999Z'],
    // Date reads these with a space as 1950, 2001, 1999 (years 0-99 are two-digit years to it).
    ['0050-06-01 00:00:00Z', '0050-06-01T00:00:00.000Z'],
    ['0001-01-01 00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['0099-12-31 23:59:59.999Z', '0099-12-31T23:59:59.999Z'],
    ['0020-01-01T00:00:00Z', '0020-01-01T00:00:00.000Z'],
    ['0001-01-01T23:59:00+23:59', '0001-01-01T00:00:00.000Z'],
    ['9999-12-31T00:00:00-23:59', '9999-12-31T23:59:00.000Z'],
  ])('%s names %s', (sent, instant) => {
    expect(iso(sent)).toBe(instant);
  });

  it.each([
    ['year 0000', '0000-06-01T00:00:00Z'],
    ['before year 1 UTC', '0001-01-01T00:00:00+00:01'],
    ['after year 9999 UTC', '9999-12-31T23:59:59-00:01'],
    ['a leap second', '2016-12-31T23:59:60Z'],
    ['hour 24', '2024-01-01T24:00:00Z'],
    ['February 29 of a common year', '2023-02-29T10:00:00Z'],
    ['April 31', '2024-04-31T10:00:00Z'],
    ['an hour-only offset', '2024-01-01T10:00:00+01'],
    ['an offset of 24 hours', '2024-01-01T10:00:00+24:00'],
    ['an offset of 60 minutes', '2024-01-01T10:00:00+00:60'],
    ['no offset', '2024-01-01T10:00:00'],
    ['a tab for the T', '2024-01-01\t10:00:00Z'],
    ['a newline for the T', '2024-01-01\n10:00:00Z'],
    ['an ideographic space for the T', '2024-01-01\u300010:00:00Z'],
    ['surrounding spaces', ' 2024-01-01T10:00:00Z '],
    ['a trailing newline', '2024-01-01T10:00:00Z\n'],
    ['an empty fraction', '2024-01-01T10:00:00.Z'],
    ['a comma fraction', '2024-01-01T10:00:00,5Z'],
    ['Arabic-Indic digits', '\u0662\u0660\u0662\u0664-01-01T10:00:00Z'],
    ['an expanded year', '+002024-01-01T10:00:00Z'],
    ['a date only', '2024-01-01'],
  ])('refuses %s (%j)', (_name, sent) => {
    expect(parseDateTime(sent)).toBeUndefined();
  });
});

describe("parseDateTime(text, 'ceil'): a bound between two stored milliseconds", () => {
  it.each([
    ['2024-01-01T10:00:00.0005Z', '2024-01-01T10:00:00.001Z', '2024-01-01T10:00:00.000Z'],
    ['2024-01-01T10:00:00.123000001Z', '2024-01-01T10:00:00.124Z', '2024-01-01T10:00:00.123Z'],
    ['2024-01-01T10:00:00.1230000Z', '2024-01-01T10:00:00.123Z', '2024-01-01T10:00:00.123Z'],
    ['2024-01-01T10:00:00.999999+01:00', '2024-01-01T09:00:01.000Z', '2024-01-01T09:00:00.999Z'],
  ])('%s rounds up to %s (a value to store: %s)', (sent, ceil, floor) => {
    expect(parseDateTime(sent, 'ceil')?.toISOString()).toBe(ceil);
    expect(parseDateTime(sent)?.toISOString()).toBe(floor);
  });

  it('9999-12-31T23:59:59.9995Z is in range, and as a bound it is the first instant of year 10000', () => {
    expect(parseDateTime('9999-12-31T23:59:59.9995Z')?.toISOString()).toBe('9999-12-31T23:59:59.999Z');
    expect(parseDateTime('9999-12-31T23:59:59.9995Z', 'ceil')?.getTime()).toBe(Date.parse('+010000-01-01T00:00:00.000Z'));
  });
});

describe('readTimestamptz: PostgreSQL text, read exactly', () => {
  it.each([
    ['2024-06-01 02:00:00.5+02', '2024-06-01T00:00:00.500Z'],
    ['2024-06-01 00:00:00+00', '2024-06-01T00:00:00.000Z'],
    ['2024-06-01 05:30:00.123+05:30', '2024-06-01T00:00:00.123Z'],
    // Date's parser: 1950, an Invalid Date, 2001.
    ['0050-06-01 00:00:00+00', '0050-06-01T00:00:00.000Z'],
    ['0020-01-01 00:00:00+00', '0020-01-01T00:00:00.000Z'],
    ['0001-01-01 00:00:00+00', '0001-01-01T00:00:00.000Z'],
    // Local mean time in a session in Europe/Paris: an offset with seconds, an Invalid Date to Date.
    ['1850-01-01 00:09:21+00:09:21', '1850-01-01T00:00:00.000Z'],
    ['1900-01-01 05:21:10+05:21:10', '1900-01-01T00:00:00.000Z'],
    ['9999-12-31 23:59:59.999+00', '9999-12-31T23:59:59.999Z'],
    ['0001-12-31 00:00:00+00 BC', '0000-12-31T00:00:00.000Z'],
  ])('%s is %s', (text, instant) => {
    expect(readTimestamptz(text).toISOString()).toBe(instant);
  });

  it("'infinity' is left to Date, as before", () => {
    expect(Number.isNaN(readTimestamptz('infinity').getTime())).toBe(true);
  });

  it('the ts() columns of every table read with it', () => {
    const table = pgTable('probe', { at: ts('at') });
    expect((table.at.mapFromDriverValue('0020-01-01 00:00:00+00') as Date).toISOString()).toBe('0020-01-01T00:00:00.000Z');
    expect(table.at.mapToDriverValue(new Date('0020-01-01T00:00:00.000Z'))).toBe('0020-01-01T00:00:00.000Z');
    expect(table.at.getSQLType()).toBe('timestamp (3) with time zone');
  });
});
