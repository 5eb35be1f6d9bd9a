// Request validation: query, path and headers are coerced from strings; bodies are not (a
// number where a string belongs is an error, not a silent conversion). Unknown properties are
// rejected, never stripped.
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import type { FieldError } from '../shared/errors.js';
import { isUuid } from '../shared/ids.js';

// ajv-formats is CommonJS: its function arrives as the default export's default.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => Ajv;

/**
 * ajv-formats' date-time also lets through leap seconds (23:59:60), hour-only offsets (+01) and
 * year 0000, which Date or PostgreSQL cannot read: a 500 instead of a 400. Keep its check and
 * also require an instant between years 1 and 9999 UTC.
 */
function withStorableDateTime(ajv: Ajv): Ajv {
  const base = ajv.formats['date-time'] as { validate: (s: string) => boolean; compare?: (a: string, b: string) => number | undefined };
  return ajv.addFormat('date-time', {
    type: 'string',
    validate: (s: string) => {
      if (!base.validate(s)) return false;
      const year = new Date(s).getUTCFullYear();
      return year >= 1 && year <= 9999;
    },
    ...(base.compare ? { compare: base.compare } : {}),
  });
}

/**
 * ajv-formats' uuid also takes a 'urn:uuid:' prefix, which PostgreSQL's uuid type does not: the
 * one UUID check of the codebase (src/shared/ids.ts) decides instead.
 */
const withCanonicalUuid = (ajv: Ajv): Ajv => ajv.addFormat('uuid', { type: 'string', validate: isUuid });

const formats = (ajv: Ajv) => withCanonicalUuid(withStorableDateTime(addFormats(ajv)));
const common = { removeAdditional: false, useDefaults: true, allErrors: true, strict: false } as const;
const bodyAjv = formats(new Ajv({ ...common, coerceTypes: false }));
const paramAjv = formats(new Ajv({ ...common, coerceTypes: 'array' }));

/** The JSON pointer of the first string holding U+0000, which PostgreSQL text cannot store. */
function nulAt(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [k, v] of Object.entries(value)) {
    const found = nulAt(v, `${path}/${k}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : paramAjv;
  const validate = ajv.compile(schema);
  // A NUL character would otherwise reach SQL and fail there as a 500.
  const checked = (data: unknown): boolean => {
    if (!validate(data)) {
      checked.errors = validate.errors;
      return false;
    }
    const at = nulAt(data, '');
    checked.errors = at === undefined ? null : [{ instancePath: at, schemaPath: '', keyword: 'nul', params: {}, message: 'must not contain NUL characters' }];
    return at === undefined;
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
