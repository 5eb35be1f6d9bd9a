// The fuzzer's view of the API: the operations of docs/openapi.json, and a check that a response
// is one the document promises (a documented status; a body valid against that status' schema).
// The document is read as published, not the TypeBox schemas: it is the contract clients get.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { LightMyRequestResponse } from 'fastify';

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => Ajv2020;

export type JsonSchema = Record<string, unknown>;
export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: JsonSchema;
}

export interface Operation {
  /** "PATCH /v1/tasks/{id}" */
  key: string;
  method: Method;
  /** The path template as documented ("/v1/tasks/{id}"). */
  path: string;
  parameters: Parameter[];
  body: JsonSchema | undefined;
  secured: boolean;
  /** Documented statuses and, for each, its content types. */
  responses: Map<number, string[]>;
}

interface RawOperation {
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema: JsonSchema }> };
  security?: unknown[];
  responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>;
}
interface Document {
  paths: Record<string, Record<string, RawOperation>>;
  components: { schemas: Record<string, JsonSchema> };
}

export const document = JSON.parse(readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8')) as Document;

/** Replaces every local $ref by the component it names (the document has no recursive schemas). */
export function deref(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(deref);
  if (schema === null || typeof schema !== 'object') return schema;
  const ref = (schema as { $ref?: unknown }).$ref;
  if (typeof ref === 'string') {
    const name = /^#\/components\/schemas\/(.+)$/.exec(ref)?.[1];
    const target = name === undefined ? undefined : document.components.schemas[name];
    if (!target) throw new Error(`unresolvable $ref ${ref}`);
    return deref(target);
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, deref(v)]));
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

export const operations: Operation[] = Object.entries(document.paths).flatMap(([path, ops]) =>
  METHODS.filter((m) => ops[m]).map((m) => {
    const op = ops[m]!;
    const body = op.requestBody?.content?.['application/json']?.schema;
    return {
      key: `${m.toUpperCase()} ${path}`,
      method: m.toUpperCase() as Method,
      path,
      parameters: (op.parameters ?? []).map((p) => ({ ...p, required: p.required === true, schema: deref(p.schema) as JsonSchema })),
      body: body === undefined ? undefined : (deref(body) as JsonSchema),
      secured: (op.security ?? []).length > 0,
      responses: new Map(Object.entries(op.responses).map(([status, r]) => [Number(status), Object.keys(r.content ?? {})])),
    };
  }),
);

// The checker's formats are its own, stricter than the server's: what the API writes is the
// canonical spelling (lowercase UUIDs; timestamps as toISOString writes them).
const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true, validateFormats: true }));
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) && new Date(s).toISOString() === s });
ajv.addSchema(document, 'openapi.json');

const validators = new Map<string, ReturnType<typeof ajv.compile>>();
function validatorFor(op: Operation, status: number, type: string) {
  const key = `${op.key} ${status} ${type}`;
  let v = validators.get(key);
  if (!v) {
    const pointer = ['paths', op.path, op.method.toLowerCase(), 'responses', String(status), 'content', type, 'schema']
      .map((s) => s.replaceAll('~', '~0').replaceAll('/', '~1'))
      .join('/');
    v = ajv.compile({ $ref: `openapi.json#/${pointer}` });
    validators.set(key, v);
  }
  return v;
}

/** What is wrong with a response against the document; undefined when nothing is. */
export function responseProblem(op: Operation, res: LightMyRequestResponse): string | undefined {
  const types = op.responses.get(res.statusCode);
  if (!types) return `status ${res.statusCode} is not documented for ${op.key} (documented: ${[...op.responses.keys()].join(', ')}); body ${res.body.slice(0, 300)}`;
  if (types.length === 0) return res.body === '' ? undefined : `status ${res.statusCode} documents no body, got ${res.body.slice(0, 200)}`;
  const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (!types.includes(type)) return `content-type ${type} is not documented for ${res.statusCode} (${types.join(', ')})`;
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    return `body is not JSON: ${res.body.slice(0, 200)}`;
  }
  const validate = validatorFor(op, res.statusCode, type);
  if (!validate(body)) return `body does not match the ${res.statusCode} schema: ${ajv.errorsText(validate.errors)}; body ${res.body.slice(0, 300)}`;
  if (type === 'application/problem+json' && (body as { status?: unknown }).status !== res.statusCode) {
    return `problem status ${String((body as { status?: unknown }).status)} differs from the response's ${res.statusCode}`;
  }
  return undefined;
}
