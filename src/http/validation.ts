// Request validation: query, path and headers are coerced from strings; bodies are not (a
// number where a string belongs is an error, not a silent conversion). Unknown properties are
// rejected, never stripped.
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import type { FieldError } from '../shared/errors.js';

// ajv-formats is CommonJS: its function arrives as the default export's default.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => Ajv;

const common = { removeAdditional: false, useDefaults: true, allErrors: true, strict: false } as const;
const bodyAjv = addFormats(new Ajv({ ...common, coerceTypes: false }));
const paramAjv = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : paramAjv;
  return ajv.compile(schema) as ReturnType<FastifySchemaCompiler<object>>;
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
