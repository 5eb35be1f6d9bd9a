// Request validation: query, path and headers are coerced from strings; bodies are not (a
// number where a string belongs is an error, not a silent conversion). Unknown properties are
// rejected, never stripped.
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import { parseDateTime } from '../shared/date-time.js';
import type { FieldError } from '../shared/errors.js';
import { isUuid } from '../shared/ids.js';

// ajv-formats is CommonJS: its function arrives as the default export's default.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => Ajv;

/**
 * ajv-formats' date-time also lets through leap seconds (23:59:60), hour-only offsets (+01), year
 * 0000, and any whitespace (a tab, U+3000) between date and time. The services read a date-time
 * with the same function that decides here (src/shared/date-time.ts), never with Date's parser,
 * which reads '0050-06-01 00:00:00Z' as 1950.
 */
const withStorableDateTime = (ajv: Ajv): Ajv => ajv.addFormat('date-time', { type: 'string', validate: (s: string) => parseDateTime(s) !== undefined });

/**
 * ajv-formats' uuid also takes a 'urn:uuid:' prefix, which PostgreSQL's uuid type does not, and
 * uppercase, which names the same row in another spelling: the one UUID check of the codebase
 * (src/shared/ids.ts, the canonical lowercase spelling) decides instead.
 */
const withCanonicalUuid = (ajv: Ajv): Ajv => ajv.addFormat('uuid', { type: 'string', validate: isUuid });

const formats = (ajv: Ajv) => withCanonicalUuid(withStorableDateTime(addFormats(ajv)));
const common = { removeAdditional: false, useDefaults: true, allErrors: true, strict: false } as const;
const bodyAjv = formats(new Ajv({ ...common, coerceTypes: false }));
const paramAjv = formats(new Ajv({ ...common, coerceTypes: 'array' }));

/** An unpaired UTF-16 surrogate: JSON can carry it ("\\ud800"), UTF-8 and so PostgreSQL cannot. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why PostgreSQL cannot keep this string as it is, or undefined when it can. */
function unstorable(s: string): string | undefined {
  // text refuses U+0000 (a 500); jsonb (the outbox) refuses an unpaired surrogate (a 500), and text
  // silently stores U+FFFD in its place (an update acknowledged, a different value read back).
  if (s.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(s)) return 'must not contain unpaired surrogates (\\ud800-\\udfff without their pair)';
  return undefined;
}

/** The first string PostgreSQL cannot store as it is, with its JSON pointer. */
function unstorableAt(value: unknown, path: string): { at: string; message: string } | undefined {
  if (typeof value === 'string') {
    const message = unstorable(value);
    return message === undefined ? undefined : { at: path, message };
  }
  if (value === null || typeof value !== 'object') return undefined;
  for (const [k, v] of Object.entries(value)) {
    const found = unstorableAt(v, `${path}/${k}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : paramAjv;
  const validate = ajv.compile(schema);
  // Such a string would otherwise reach SQL and fail there as a 500, or be stored as another one.
  const checked = (data: unknown): boolean => {
    if (!validate(data)) {
      checked.errors = validate.errors;
      return false;
    }
    const found = unstorableAt(data, '');
    checked.errors = found === undefined ? null : [{ instancePath: found.at, schemaPath: '', keyword: 'unstorable', params: {}, message: found.message }];
    return found === undefined;
  };
  checked.errors = null as ErrorObject[] | null | undefined;
  return checked as ReturnType<FastifySchemaCompiler<object>>;
};

const PART: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' };

/** Turns Ajv errors into one entry per offending field. */
export function fieldErrors(errors: ErrorObject[], context: string | undefined): FieldError[] {
  const where = PART[context ?? 'body'] ?? 'body';
  const out = new Map<string, FieldError>();
  for (const e of errors) {
    let field = e.instancePath.slice(1).replaceAll('/', '.');
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      field = [field, (e.params as { missingProperty: string }).missingProperty].filter(Boolean).join('.');
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      field = [field, (e.params as { additionalProperty: string }).additionalProperty].filter(Boolean).join('.');
      message = 'is not allowed';
    } else if (e.keyword === 'minProperties') {
      message = 'must contain at least one field';
    } else if (e.keyword === 'pattern' && field !== '') {
      message = 'has an invalid format';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    }
    // Keep the first, most specific message per field (anyOf adds a vaguer one after its branches).
    if (!out.has(field)) out.set(field, { in: where, field, message });
  }
  return [...out.values()];
}
