// Random, boundary and hostile values for the fuzzer, and the independent readings it checks the
// server against (what instant an RFC 3339 string names, what a canonical UUID is).
import fc from 'fast-check';

// ---- strings

/** One UTF-16 code unit: unpaired surrogates (\ud800), NUL and every control character included. */
export const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

/** Characters that break things more often than a uniform draw finds them. */
const NASTY_CHARS = [
  '\u0000', '\u0001', '\u0007', '\b', '\t', '\n', '\v', '\f', '\r', '\u001b', '\u001f', '\u007f', '\u0080', '\u0085', '\u009f',
  '\u00a0', '\u00ad', '\u034f', '\u061c', '\u180e', '\u200b', '\u200d', '\u200e', '\u2028', '\u2029', '\u202e', '\u2060', '\u3000',
  '\ufeff', '\ufffd', '\ufffe', '\uffff', '\ud800', '\udbff', '\udc00', '\udfff', '\ud83d\ude00', '\udbff\udfff', 'e\u0301', '\u0130',
  '\u00df', '\ufb00', '\u212a', '"', "'", '\\', '/', '%', '&', '=', '+', '#', '?', '{', '}', '[', ']', ',', ';', ':', '*', '<', '>',
  '$', '`', '@', ' ', '-', '.', '0', 'a', 'Z', '\u00e9', '\u20ac', '\u4e2d', '\u{1d54f}', '\u{10ffff}',
];
const nastyChar = fc.constantFrom(...NASTY_CHARS);

/** A character drawn from everywhere: any code unit, any code point, or one of the nasty ones. */
export const anyChar = fc.oneof({ weight: 3, arbitrary: nastyChar }, { weight: 2, arbitrary: codeUnit }, { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) }, { weight: 3, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) });

export const anyString = (maxLength = 40, minLength = 0) => fc.string({ unit: anyChar, minLength, maxLength });

/** Strings of exactly n units of one character (ASCII, 2-byte, 3-byte, astral: two UTF-16 units). */
export const lengthString = (n: number) => fc.constantFrom('a', '\u00e9', '\u20ac', '\u{1d54f}', ' ', '\ud800').map((c) => c.repeat(n));

const SPECIAL_STRINGS = [
  '', ' ', '  ', '\t', '\n', '\u0000', 'a\u0000b', '\ud800', 'a\ud800', '\udc00a', '\udfff\ud800', 'x\udbff', 'null', 'undefined', 'NaN',
  'true', '0', '-1', '1e309', '0x10', '%', '%00', '%zz', '%ED%A0%80', '../../etc/passwd', "' OR '1'='1", '"; DROP TABLE tasks; --',
  '<script>alert(1)</script>', '{}', '[]', '\\u0000', '\\ud800', '${7*7}', '{{7*7}}', '\u202etxt.exe', '\ufeffbom', '\r\nX-Injected: 1',
  'infinity', '-infinity', 'epoch', 'now', 'today', 'allballs', '\u0130stanbul', 'Stra\u00dfe', '\u{1d54f}\u{1d54f}',
];
export const specialString = fc.constantFrom(...SPECIAL_STRINGS);

/** Huge, empty and boundary-length strings. */
export const sizedString = fc.constantFrom(0, 1, 2, 49, 50, 51, 99, 100, 101, 127, 128, 129, 199, 200, 201, 253, 254, 255, 511, 512, 513, 1023, 1024, 1025, 2048, 2049, 9999, 10000, 10001, 70000).chain(lengthString);

export const hostileString = fc.oneof(specialString, anyString(30), sizedString);

// ---- JSON values of the wrong kind

export const hostileNumber = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 0.5, 1e-320, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53 + 2, -(2 ** 53), 1e21, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
);

export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 2, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, false, [], {}, [null], [''], { '': '' }, [[[[[]]]]]) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(hostileString, { minLength: 19, maxLength: 25 }) },
  { weight: 1, arbitrary: fc.constantFrom(200, 1000, 10000).map((n) => Array.from({ length: n }, (_, i) => `t${i}`)) },
);

// ---- dates

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const daysIn = (y: number, m: number) => [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;

const EDGE_YEARS = [0, 1, 2, 9, 10, 11, 12, 13, 19, 20, 31, 32, 49, 50, 68, 69, 70, 99, 100, 101, 999, 1000, 1582, 1847, 1883, 1900, 1901, 1969, 1970, 2000, 2038, 2100, 9998, 9999];
const year = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...EDGE_YEARS) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 9999 }) }, { weight: 2, arbitrary: fc.integer({ min: 1990, max: 2060 }) });
const offset = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('Z', 'z', '+00:00', '-00:00', '+23:59', '-23:59', '+14:00', '-12:00', '+05:30', '+05:45', '-09:30', '+0100', '-2359') },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(([s, h, m]) => `${s}${pad(h)}:${pad(m)}`) },
  { weight: 1, arbitrary: fc.constantFrom('+24:00', '-24:00', '+00:60', '+01', '-1', '+1:00', '', ' Z', 'UTC', 'GMT', '+01:00:00', 'Z ', '+\u0661\u0662:00') },
);
const fraction = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }).chain((n) => fc.stringMatching(new RegExp(`^[0-9]{${n}}$`))).map((d) => `.${d}`) },
  { weight: 2, arbitrary: fc.integer({ min: 4, max: 40 }).chain((n) => fc.stringMatching(new RegExp(`^[0-9]{${n}}$`))).map((d) => `.${d}`) },
  { weight: 1, arbitrary: fc.constantFrom('.9995', '.9999999999', '.0000001', '.', ',5', '.5e1') },
);
const separator = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('T', 't', ' ') }, { weight: 1, arbitrary: fc.constantFrom('\t', '\n', '\u00a0', '\u3000', '\ufeff', '_', '', 'TT') });

/** Dates at every edge of the accepted range, and just past it. */
export const dateTimeString: fc.Arbitrary<string> = fc
  .record({
    y: year,
    m: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 12 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 13) }),
    d: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('first', 'last', 'any') }, { weight: 1, arbitrary: fc.constantFrom('zero', 'past', 'feb29') }),
    anyDay: fc.integer({ min: 1, max: 28 }),
    h: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 23 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 23, 24) }),
    mi: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 59 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 59, 60) }),
    s: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 59 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 59, 60) }),
    frac: fraction,
    sep: separator,
    off: offset,
    around: fc.oneof({ weight: 12, arbitrary: fc.constant(['', '']) }, { weight: 1, arbitrary: fc.constantFrom([' ', ''], ['', ' '], ['', '\n'], ['+', ''], ['+00', ''], ['-', '']) }),
  })
  .map(({ y, m, d, anyDay, h, mi, s, frac, sep, off, around }) => {
    const month = Math.min(Math.max(m, 1), 12);
    const day = d === 'first' ? 1 : d === 'last' ? daysIn(y, month) : d === 'any' ? anyDay : d === 'zero' ? 0 : d === 'past' ? daysIn(y, month) + 1 : 29;
    const date = `${pad(y, 4)}-${pad(m)}-${pad(day)}`;
    return `${around[0]}${date}${sep}${pad(h)}:${pad(mi)}:${pad(s)}${frac}${off}${around[1]}`;
  });

/** Other things sent where a date belongs. */
export const notADate = fc.constantFrom(
  '2024-01-01', '10:00:00Z', '2024-01-01T10:00Z', '2024-W01-1T10:00:00Z', '2024-001T10:00:00Z', '20240101T100000Z', '1704103200',
  '1704103200000', 'Mon, 01 Jan 2024 10:00:00 GMT', '2024-01-01T10:00:00.000+01:00[Europe/Paris]', '+002024-01-01T10:00:00Z',
  '-000001-01-01T00:00:00Z', '10000-01-01T00:00:00Z', 'infinity', '-infinity', 'epoch', 'now', '\u0662\u0660\u0662\u0664-01-01T10:00:00Z',
);

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/**
 * The instant (epoch milliseconds) an RFC 3339 date-time names, its fraction cut to milliseconds;
 * undefined when the string is not one (bad calendar date, leap second, hour-only offset) or
 * names an instant outside years 1 to 9999 UTC. Computed without Date's parser.
 */
export function instantOf(s: string, rounding: 'floor' | 'ceil' = 'floor'): number | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || sec > 59) return undefined;
  let offsetMinutes = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const base = new Date(0);
  base.setUTCFullYear(y, mo - 1, d); // not Date.UTC: it reads years 0-99 as 1900-1999
  base.setUTCHours(h, mi, sec, ms);
  const instant = base.getTime() - offsetMinutes * 60_000;
  const utcYear = new Date(instant).getUTCFullYear();
  if (utcYear < 1 || utcYear > 9999) return undefined;
  // As a bound, a fraction past the millisecond sits between two stored values: compare with the next.
  return rounding === 'ceil' && /[1-9]/.test((m[7] ?? '').slice(3)) ? instant + 1 : instant;
}

/** How the API writes an instant. */
export const isoOf = (ms: number) => new Date(ms).toISOString();

// ---- ids

export const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The spellings a validator might take for the same UUID (only 'canonical' is one the API accepts). */
export const ID_SPELLINGS = [
  'canonical', 'upper', 'mixed', 'braces', 'urn', 'URN', 'no-hyphens', 'leading-space', 'trailing-space', 'trailing-newline', 'tab',
  'nul', 'percent-hyphen', 'fullwidth', 'short', 'long', 'extra-group', 'plus-sign', 'surrogate',
] as const;
export type IdSpelling = (typeof ID_SPELLINGS)[number];

export function spell(id: string, how: IdSpelling): string {
  switch (how) {
    case 'canonical':
      return id;
    case 'upper':
      return id.toUpperCase();
    case 'mixed':
      return [...id].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
    case 'braces':
      return `{${id}}`;
    case 'urn':
      return `urn:uuid:${id}`;
    case 'URN':
      return `URN:UUID:${id.toUpperCase()}`;
    case 'no-hyphens':
      return id.replaceAll('-', '');
    case 'leading-space':
      return ` ${id}`;
    case 'trailing-space':
      return `${id} `;
    case 'trailing-newline':
      return `${id}\n`;
    case 'tab':
      return `\t${id}`;
    case 'nul':
      return `${id}\u0000`;
    case 'percent-hyphen':
      return id.replaceAll('-', '%2D');
    case 'fullwidth':
      return id.replace(/[0-9]/, (c) => String.fromCharCode(0xff10 + Number(c)));
    case 'short':
      return id.slice(0, -1);
    case 'long':
      return `${id}0`;
    case 'extra-group':
      return `${id}-0000`;
    case 'plus-sign':
      return id.replace('-', '+');
    case 'surrogate':
      return `${id.slice(0, -1)}\ud800`;
  }
}

export const idSpelling = fc.oneof(
  { weight: 5, arbitrary: fc.constant<IdSpelling>('canonical') },
  { weight: 2, arbitrary: fc.constantFrom<IdSpelling>('upper', 'mixed') },
  { weight: 3, arbitrary: fc.constantFrom(...ID_SPELLINGS) },
);

/** UUIDs nobody has: random of each version, nil, max. */
export const strangerId = fc.oneof(fc.uuid(), fc.constantFrom('00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '01890a5d-ac96-774b-bcce-b302099a8057'));

/** What is sent where an integer belongs in a query string. */
export const integerText = (min: number, max: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min, max }).map(String) },
    { weight: 2, arbitrary: fc.constantFrom(String(min), String(max), String(min - 1), String(max + 1)) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('', ' ', '-0', '+1', '01', '1.0', '1.5', '1e1', '1e2', '0x10', '0b1', 'NaN', 'Infinity', '-Infinity', '9007199254740993', '1e309', ' 5', '5 ', '\u0665', 'true', 'null', '[]', '1,2'),
    },
  );

export const booleanText = fc.constantFrom('true', 'false', 'TRUE', 'True', '1', '0', 'yes', 'no', '', 'null', 'on', 'off', ' true', 'true ');
