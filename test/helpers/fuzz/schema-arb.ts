// Values from a JSON schema of docs/openapi.json: `valid` draws what the schema allows, edges and
// characters included (the server must store and read back every one of them); `fuzzed` mixes in
// boundary values just outside it and hostile values of any kind.
import fc from 'fast-check';
import type { JsonSchema } from './openapi.js';
import { anyString, booleanText, dateTimeString, hostileJson, hostileString, integerText, lengthString, notADate } from './values.js';

type S = JsonSchema & {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: S[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  items?: S;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  properties?: Record<string, S>;
  required?: string[];
  minProperties?: number;
};

/** Code-point length, as JSON Schema counts it. */
const lengthOf = (s: string) => [...s].length;

/** http(s) URLs: IP literals and localhost (no DNS), ports, paths, queries and odd characters. */
const url = fc
  .record({
    scheme: fc.constantFrom('http', 'https', 'HTTP', 'Https'),
    host: fc.constantFrom('127.0.0.1', 'localhost', '[::1]', '10.1.2.3', '93.184.215.14', '[2606:2800:21f:cb07:6820:80da:af6b:8b2c]', 'LOCALHOST', '0x7f.1'),
    port: fc.constantFrom('', ':1', ':8080', ':65535'),
    path: fc.constantFrom('', '/', '/hook', '/a/b?c=d&e=%20', '/%F0%9F%98%80', '/#frag', '/\u00e9', "/'\"", '/' + 'p'.repeat(2000)),
  })
  .map(({ scheme, host, port, path }) => `${scheme}://${host}${port}${path}`);

function validString(s: S): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  const max = s.maxLength ?? 300;
  const fits = (v: string) => lengthOf(v) >= min && lengthOf(v) <= max && (!s.pattern || new RegExp(s.pattern, 'u').test(v));
  if (s.format === 'date-time') return dateTimeString;
  if (s.format === 'uri') return url.filter(fits);
  const boundary = fc.constantFrom(min, Math.max(min, 1), max).chain(lengthString);
  const free = fc.oneof(anyString(Math.min(max, 60), min), anyString(max, min), boundary);
  if (!s.pattern) return free.filter(fits);
  const matching = fc.stringMatching(new RegExp(s.pattern), { size: 'small' });
  // A pattern's own draws, and free ones with a non-space at each end (the 'not blank' patterns).
  const padded = free.map((v) => (v.length === 0 ? 'x' : v)).map((v) => `${/^\S/u.test(v) ? '' : 'x'}${v}${/\S$/u.test(v) ? '' : 'y'}`);
  return fc.oneof(matching, padded).filter(fits);
}

export function valid(schema: S): fc.Arbitrary<unknown> {
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map(valid));
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if ('const' in schema) return fc.constant(schema.const);
  switch (schema.type ?? '') {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer': {
      const min = schema.minimum ?? -(2 ** 31);
      const max = schema.maximum ?? 2 ** 31;
      return fc.oneof(fc.constantFrom(min, max), fc.integer({ min, max }));
    }
    case 'string':
      return validString(schema);
    case 'array': {
      const items = valid(schema.items ?? {});
      const c = { minLength: schema.minItems ?? 0, maxLength: schema.maxItems ?? 5 };
      return schema.uniqueItems ? fc.uniqueArray(items, c) : fc.oneof(fc.array(items, c), fc.array(items, { ...c, minLength: c.maxLength }));
    }
    case 'object':
      return validObject(schema);
    default:
      return hostileJson;
  }
}

function validObject(schema: S): fc.Arbitrary<Record<string, unknown>> {
  const props = schema.properties ?? {};
  const record = fc.record(Object.fromEntries(Object.entries(props).map(([k, v]) => [k, valid(v)])), { requiredKeys: schema.required ?? [] });
  const min = schema.minProperties ?? 0;
  return record.filter((o) => Object.keys(o).length >= min);
}

/** Just outside the schema, where a validator's edge is. */
export function edge(schema: S): fc.Arbitrary<unknown> {
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map(edge));
  if (schema.enum) {
    const words = schema.enum.map(String);
    return fc.constantFrom(...words.flatMap((w) => [w.toUpperCase(), ` ${w}`, `${w} `, `${w}\u0000`, w.replace(/_/g, '-'), `${w},${w}`]), '', null);
  }
  switch (schema.type ?? '') {
    case 'integer': {
      const min = schema.minimum ?? 0;
      const max = schema.maximum ?? 100;
      return fc.constantFrom<unknown>(min - 1, max + 1, 1.5, -0, 2 ** 31, 2 ** 53 + 2, 1e308, String(min), null, true);
    }
    case 'string': {
      if (schema.format === 'date-time') return fc.oneof(notADate, dateTimeString.map((d) => d.toLowerCase()), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()));
      const min = schema.minLength ?? 0;
      const max = schema.maxLength ?? 1000;
      return fc.oneof(fc.constantFrom(Math.max(0, min - 1), max + 1).chain(lengthString), fc.constantFrom<unknown>('', ' ', '\t\n', 12, null, ['x'], { x: 1 }));
    }
    case 'array': {
      const max = schema.maxItems ?? 20;
      return fc.oneof(
        fc.array(valid(schema.items ?? {}), { minLength: max + 1, maxLength: max + 2 }),
        fc.array(fuzzed(schema.items ?? {}), { maxLength: 4 }),
        fc.constantFrom<unknown>([], 'x', {}, null, [[]]),
      );
    }
    case 'boolean':
      return fc.constantFrom<unknown>('true', 1, 0, null, 'false', []);
    case 'object':
      return fc.constantFrom<unknown>({}, [], null, 'x', 1);
    default:
      return hostileJson;
  }
}

/** A body field's value: mostly valid, sometimes at or past an edge, sometimes anything. */
export const fuzzed = (schema: S): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 6, arbitrary: valid(schema) }, { weight: 2, arbitrary: edge(schema) }, { weight: 1, arbitrary: hostileJson });

/** A query or header parameter's text. */
export function fuzzedText(schema: S): fc.Arbitrary<string> {
  const hostile = fc.oneof(hostileString, fc.constantFrom('', ' ', '%', '%00', '\u0000', 'a&b=c', 'a#b', '[]', '{}'));
  let good: fc.Arbitrary<string>;
  if (schema.type === 'integer') good = integerText(schema.minimum ?? -100, schema.maximum ?? 100);
  else if (schema.type === 'boolean') good = booleanText;
  else if (schema.enum) good = fc.oneof(fc.constantFrom(...schema.enum.map(String)), edge(schema).map(String));
  else if (schema.format === 'date-time') good = fc.oneof(dateTimeString, notADate);
  else good = validString(schema);
  return fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: hostile });
}
