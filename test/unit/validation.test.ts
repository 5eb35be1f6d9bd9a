// The request validator (src/http/validation.ts) accepts only what PostgreSQL stores and reads back
// as it was sent: regressions the fuzzer found (test/integration/fuzz.test.ts).
import type { FastifySchema } from 'fastify';
import { describe, expect, it } from 'vitest';
import { validatorCompiler } from '../../src/http/validation.js';
import { CreateTaskBody, ListTasksQuery, TaskIdParams } from '../../src/modules/tasks/schemas.js';
import { isUuid } from '../../src/shared/ids.js';

type Check = ((data: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null };
const compile = (schema: unknown, httpPart: string) => validatorCompiler({ schema: schema as FastifySchema, httpPart, method: 'POST', url: '/' }) as unknown as Check;

const body = compile(CreateTaskBody, 'body');
const refusal = (check: Check, data: unknown) => {
  const ok = check(data);
  return ok ? undefined : check.errors?.[0];
};

describe('strings PostgreSQL cannot keep as they are', () => {
  it.each([
    ['a lone high surrogate in the title', { title: 'a\ud800' }, '/title'],
    ['a lone low surrogate in the title', { title: '\udc00b' }, '/title'],
    ['a reversed pair in the description', { title: 'ok', description: '\udc00\ud800' }, '/description'],
    ['a lone surrogate in a tag', { title: 'ok', tags: ['fine', 'x\udbff'] }, '/tags/1'],
    ['NUL in the title (as before)', { title: 'a\u0000' }, '/title'],
  ])('%s is refused at %s', (_name, data, at) => {
    expect(refusal(body, data)).toMatchObject({ instancePath: at });
  });

  it('the message names the surrogate, not NUL', () => {
    expect(refusal(body, { title: '\ud800' })?.message).toContain('unpaired surrogates');
  });

  it.each([
    ['an emoji (a surrogate pair)', { title: '\ud83d\ude00' }],
    ['the last code point', { title: '\u{10ffff}' }],
    ['U+FFFD itself', { title: '\ufffd' }],
    ['U+FEFF and U+FFFF', { title: '\ufeff\uffff' }],
  ])('%s is accepted', (_name, data) => {
    expect(body(data)).toBe(true);
  });
});

describe("date-time: RFC 3339 as the services read it, years 0001-9999", () => {
  it.each(['2024-01-01T10:00:00Z', '2024-01-01t10:00:00z', '2024-01-01 10:00:00+01:00', '0050-06-01 00:00:00Z', '9999-12-31T23:59:59.999-00:00'])('dueAt %j is accepted', (dueAt) => {
    expect(body({ title: 'ok', dueAt })).toBe(true);
  });

  it.each(['2024-01-01\t10:00:00Z', '2024-01-01\u300010:00:00Z', '2024-01-01\u00a010:00:00Z', '2016-12-31T23:59:60Z', '0000-12-31T23:59:59Z', '9999-12-31T23:59:59-00:01'])('dueAt %j is refused', (dueAt) => {
    expect(refusal(body, { title: 'ok', dueAt })).toMatchObject({ instancePath: '/dueAt' });
  });

  it('so are dueBefore and dueAfter', () => {
    const query = compile(ListTasksQuery, 'querystring');
    expect(query({ dueBefore: '2024-01-01\t10:00:00Z' })).toBe(false);
    expect(query({ dueAfter: '0050-06-01 00:00:00Z' })).toBe(true);
  });
});

describe('uuid: the canonical lowercase spelling only', () => {
  const id = '0192f7a0-0000-7000-8000-00000000abcd';
  const params = compile(TaskIdParams, 'params');

  it('the canonical spelling is accepted', () => {
    expect(params({ id })).toBe(true);
    expect(isUuid(id)).toBe(true);
  });

  it.each([id.toUpperCase(), '0192F7A0-0000-7000-8000-00000000ABCD'.slice(0, 8) + id.slice(8), `{${id}}`, `urn:uuid:${id}`, id.replaceAll('-', ''), ` ${id}`, `${id}\n`])('%j is refused', (spelling) => {
    expect(params({ id: spelling })).toBe(false);
    expect(isUuid(spelling)).toBe(false);
  });
});
