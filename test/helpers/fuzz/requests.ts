// Requests for one operation of docs/openapi.json, drawn as plans: who sends it, each path
// parameter (an id of a pool the runner keeps, in some spelling), each query parameter (valid,
// boundary or hostile; sometimes twice; cursors real, tampered or forged), headers, and a body
// (valid for the schema, with fields past their edges, hostile, or not JSON at all). Ids stay
// symbolic until the runner resolves them, so that a failure replays and shrinks.
import fc from 'fast-check';
import type { JsonSchema, Operation } from './openapi.js';
import { edge, fuzzed, fuzzedText, valid } from './schema-arb.js';
import { dateTimeString, hostileJson, hostileString, idSpelling, strangerId, type IdSpelling } from './values.js';

/** Whose token the request carries. */
export type Who = 'user' | 'other' | 'admin' | 'none' | 'garbage' | 'disposable';
export type AuthSpelling = 'Bearer' | 'bearer' | 'BEARER' | 'double-space' | 'trailing-space' | 'bare' | 'basic' | 'two-tokens';

/** An id in a pool ('own': the caller's; 'foreign': someone else's; 'gone': deleted), or nobody's. */
export interface IdRef {
  kind: 'id';
  from: 'own' | 'foreign' | 'gone' | 'stranger';
  pick: number;
  stranger: string;
  spelling: IdSpelling;
  /** Percent-encode it in the path (otherwise sent as is when URL-safe). */
  encode: boolean;
}

export interface CursorRef {
  kind: 'cursor';
  how: 'issued' | 'tampered' | 'forged' | 'text';
  /** forged: the JSON array inside; text: the cursor itself. */
  value: unknown;
  flip: number;
}

export type ParamValue = IdRef | CursorRef | { kind: 'text'; text: string };

export type Body =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown; extra: [string, unknown][]; drop: string[] }
  | { kind: 'raw'; text: string };

export interface Plan {
  who: Who;
  auth: AuthSpelling;
  path: Record<string, IdRef>;
  /** In order; a name may repeat (duplicated query parameters). */
  query: [string, ParamValue][];
  headers: Record<string, string>;
  contentType: string | undefined;
  body: Body;
}

const idRef = (pools: IdRef['from'][] = ['own', 'foreign', 'gone', 'stranger']): fc.Arbitrary<IdRef> =>
  fc.record({
    kind: fc.constant('id' as const),
    from: fc.oneof({ weight: 6, arbitrary: fc.constant(pools[0]!) }, { weight: 4, arbitrary: fc.constantFrom(...pools) }),
    pick: fc.nat(),
    stranger: strangerId,
    spelling: idSpelling,
    encode: fc.boolean(),
  });

const SORT_TAGS = ['createdAt', '-createdAt', 'dueAt', '-dueAt', 'priority', '-priority', 'updatedAt', '-updatedAt', 'admin', 'users', 'webhooks', 'notifications', 'deliveries'];
const cursorValue = fc.oneof(
  dateTimeString,
  fc.constantFrom('infinity', '-infinity', '0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '0000-12-31T23:59:59.999Z', '+010000-01-01T00:00:00.000Z', 'low', 'urgent', 'URGENT', ''),
  strangerId,
  fc.tuple(strangerId, idSpelling).map(([id, s]) => (s === 'canonical' ? id.toUpperCase() : id)),
  hostileString,
);
const cursorRef: fc.Arbitrary<CursorRef> = fc.record({
  kind: fc.constant('cursor' as const),
  how: fc.constantFrom('issued', 'issued', 'tampered', 'forged', 'forged', 'text'),
  value: fc.oneof(
    fc.tuple(fc.constantFrom(...SORT_TAGS), fc.array(cursorValue, { minLength: 1, maxLength: 3 })).map(([tag, vs]) => [tag, ...vs]),
    hostileJson,
  ),
  flip: fc.nat(),
});

const AUTH: fc.Arbitrary<AuthSpelling> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('Bearer' as const) },
  { weight: 1, arbitrary: fc.constantFrom('bearer', 'BEARER', 'double-space', 'trailing-space', 'bare', 'basic', 'two-tokens') },
);

const CONTENT_TYPES = [
  'text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml',
  'application/json; charset=utf-16', 'application/json; charset=latin1', 'APPLICATION/JSON', 'application/json;charset=UTF-8',
  'application/problem+json', 'application/merge-patch+json', 'application/jsonx', 'application/json, text/plain', ' application/json',
  'application/octet-stream', 'application/*', '*/*', '', 'application/json; boundary="x"',
];

const RAW_BODIES = [
  '', ' ', 'null', 'true', '0', '"x"', '[]', '[{}]', '{', '}', '{"a":}', '{"title":"a",}', "{'title':'a'}", '{"title":"a"}garbage',
  '\ufeff{"title":"bom"}', '{"title":"\\ud800"}', '{"title":"x\\udc00y"}', '{"title":"\\u0000"}', '{"title":"a","title":"b"}',
  '{"title":1e999}', '{"__proto__":{"title":"x"}}', '{"constructor":{"prototype":{"admin":true}}}', `${'['.repeat(5000)}${']'.repeat(5000)}`,
  `{"title":"${'a'.repeat(70_000)}"}`, '{"title":"ok"}\u0000', '\u0000', 'NaN', '{"title":"a"}\n{"title":"b"}',
];

const EXTRA_KEYS = ['id', 'userId', 'user_id', 'version', 'createdAt', 'updatedAt', 'completedAt', 'role', 'admin', '__proto__', 'constructor', 'prototype', '', ' ', 'Title', 'title ', 'TITLE', 'email\u0000', '$where'];

function bodyOf(schema: JsonSchema | undefined): fc.Arbitrary<Body> {
  if (!schema) return fc.oneof({ weight: 9, arbitrary: fc.constant<Body>({ kind: 'none' }) }, { weight: 1, arbitrary: fc.constantFrom<Body>({ kind: 'raw', text: '{}' }) });
  const props = Object.keys((schema.properties ?? {}));
  const fieldwise = fc.record(Object.fromEntries(Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>).map(([k, v]) => [k, fuzzed(v)])), { requiredKeys: [] });
  const json = (value: fc.Arbitrary<unknown>): fc.Arbitrary<Body> =>
    fc.record({
      kind: fc.constant('json' as const),
      value,
      extra: fc.oneof({ weight: 9, arbitrary: fc.constant<[string, unknown][]>([]) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.constantFrom(...EXTRA_KEYS), hostileJson), { minLength: 1, maxLength: 2 }) }),
      drop: fc.oneof({ weight: 9, arbitrary: fc.constant<string[]>([]) }, { weight: 1, arbitrary: fc.subarray(props, { minLength: 1 }) }),
    });
  return fc.oneof(
    { weight: 6, arbitrary: json(valid(schema)) },
    { weight: 6, arbitrary: json(fieldwise) },
    { weight: 1, arbitrary: json(edge(schema)) },
    { weight: 1, arbitrary: json(hostileJson) },
    { weight: 1, arbitrary: fc.constantFrom(...RAW_BODIES).map((text): Body => ({ kind: 'raw', text })) },
  );
}

function queryOf(op: Operation): fc.Arbitrary<[string, ParamValue][]> {
  const params = op.parameters.filter((p) => p.in === 'query');
  const one = (name: string, schema: JsonSchema): fc.Arbitrary<ParamValue> => {
    if (name === 'cursor') return fc.oneof({ weight: 3, arbitrary: cursorRef }, { weight: 1, arbitrary: fuzzedText(schema).map((text) => ({ kind: 'text' as const, text })) });
    if (schema.format === 'uuid') return fc.oneof({ weight: 3, arbitrary: idRef(['foreign', 'own', 'gone', 'stranger']) }, { weight: 1, arbitrary: fuzzedText(schema).map((text) => ({ kind: 'text' as const, text })) });
    return fuzzedText(schema).map((text) => ({ kind: 'text' as const, text }));
  };
  const each = params.map((p) =>
    fc
      .tuple(fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constant(2) }), one(p.name, p.schema), one(p.name, p.schema))
      .map(([n, a, b]) => (n === 0 ? [] : n === 1 ? [[p.name, a] as [string, ParamValue]] : [[p.name, a] as [string, ParamValue], [p.name, b] as [string, ParamValue]])),
  );
  const unknown = fc.oneof(
    { weight: 12, arbitrary: fc.constant<[string, ParamValue][]>([]) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('foo', '__proto__', 'constructor', 'limit[]', 'sort[0]', '', 'LIMIT', 'userId', 'q'), hostileString).map(([k, v]) => [[k, { kind: 'text', text: v }] as [string, ParamValue]]) },
  );
  return fc.tuple(fc.tuple(...each), unknown).map(([lists, extra]) => [...lists.flat(), ...extra]);
}

/**
 * Stands for a fresh Idempotency-Key, drawn when the request is rendered: a key the fuzzer reused
 * would be answered from the first request (a replay, or 422 for another body), which the
 * round-trip model would take for a new acknowledgement. Replays have their own tests
 * (test/integration/idempotency.test.ts); here a key must only never cause a 5xx.
 */
export const FRESH_IDEMPOTENCY_KEY = '<fresh>';
const idempotencyKey = fc.oneof(
  { weight: 4, arbitrary: fc.constant(FRESH_IDEMPOTENCY_KEY) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'x'.repeat(256), 'cl\u00e9', 'two words', '"a", "b"', '\u007f') },
);

function headersOf(op: Operation): fc.Arbitrary<Record<string, string>> {
  const ifMatch = fc.constantFrom('*', '"1"', '"2"', 'W/"1"', '"1", "2"', '"0"', '"-1"', '"999999999"', '"9999999999"', '""', 'garbage', '"1', ' "1" ', '*, "1"', '"1",,', 'x'.repeat(1025));
  const entries: fc.Arbitrary<[string, string] | undefined>[] = [
    fc.option(fc.tuple(fc.constant('if-none-match'), fc.constantFrom('*', '"1"', 'W/"1"', '"x"', '')), { freq: 4 }),
    fc.option(fc.tuple(fc.constant('x-request-id'), fc.constantFrom('', 'a'.repeat(1000), 'r\u00e9q', 'id-1', '../x')), { freq: 8 }),
    fc.option(fc.tuple(fc.constant('accept'), fc.constantFrom('application/xml', 'text/html', '*/*', 'application/problem+json', '')), { freq: 8 }),
    fc.option(fc.tuple(fc.constant('accept-encoding'), fc.constantFrom('gzip', 'br', 'identity;q=0', '*')), { freq: 8 }),
  ].map((a) => a.map((v) => v ?? undefined));
  if (op.parameters.some((p) => p.in === 'header' && p.name === 'if-match')) entries.push(fc.option(fc.tuple(fc.constant('if-match'), ifMatch), { freq: 2 }).map((v) => v ?? undefined));
  if (op.parameters.some((p) => p.in === 'header' && p.name === 'idempotency-key')) entries.push(fc.option(fc.tuple(fc.constant('idempotency-key'), idempotencyKey), { freq: 2 }).map((v) => v ?? undefined));
  return fc.tuple(...entries).map((list) => Object.fromEntries(list.filter((e): e is [string, string] => e !== undefined)));
}

/** The role an operation is meant for: admin routes document 403. */
export const adminOnly = (op: Operation) => op.responses.has(403);

/** Operations that remove or lock out the caller's account run on a disposable one. */
export const destructive = (op: Operation) => op.key === 'DELETE /v1/users/me' || op.key === 'PATCH /v1/users/me';

export function planOf(op: Operation): fc.Arbitrary<Plan> {
  const usual: Who = destructive(op) ? 'disposable' : adminOnly(op) ? 'admin' : 'user';
  const who: fc.Arbitrary<Who> = op.secured
    ? fc.oneof({ weight: 14, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constantFrom<Who>('none', 'garbage', usual === 'admin' ? 'user' : 'other') })
    : fc.oneof({ weight: 8, arbitrary: fc.constant<Who>('none') }, { weight: 1, arbitrary: fc.constantFrom<Who>('user', 'garbage') });
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const body = bodyOf(op.body);
  return fc.record({
    who,
    auth: AUTH,
    path: fc.tuple(...pathParams.map(() => idRef())).map((refs) => Object.fromEntries(pathParams.map((p, i) => [p.name, refs[i]!]))),
    query: queryOf(op),
    headers: headersOf(op),
    contentType: op.body ? fc.oneof({ weight: 12, arbitrary: fc.constant<string | undefined>('application/json') }, { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) }, { weight: 1, arbitrary: fc.constant(undefined) }) : fc.constant(undefined),
    body,
  });
}
