// What an error becomes in a log line (src/observability/logging.ts errorForLog) and in a stored
// error column (src/shared/errors.ts errorMessage, shared/redaction.ts): the errors here are built
// the way postgres.js, PGlite, Drizzle, Node and nodemailer build theirs, each carrying a secret.
import { DrizzleQueryError } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { errorForLog, loggerOptions } from '../../src/observability/logging.js';
import { errorMessage } from '../../src/shared/errors.js';
import { redactText } from '../../src/shared/redaction.js';

const SECRET = 'whsec_not-in-any-log-0123456789abcdef';
const OWN_SECRET = 'my own webhook secret 42';
const INSERT = 'insert into "webhooks" ("id", "user_id", "url", "events", "secret") values ($1, $2, $3, $4, $5)';
const PARAMS = ['0192f7a0-0000-7000-8000-000000000001', '0192f7a0-0000-7000-8000-0000000000f1', 'https://hooks.example/x', '{task.created}', OWN_SECRET];

/** A server error as postgres.js rejects a query with it: parameters and query kept, not enumerable. */
function postgresError(message: string, fields: Record<string, unknown>, parameters: unknown[]): Error {
  const err = Object.assign(new Error(message), { name: 'PostgresError', severity: 'ERROR', ...fields });
  Object.defineProperties(err, {
    query: { value: INSERT, enumerable: false },
    parameters: { value: parameters, enumerable: false },
    args: { value: parameters, enumerable: false },
  });
  return err;
}

const lineOf = (value: unknown) => JSON.stringify(errorForLog(value));

describe('errorForLog: a failed statement', () => {
  const cause = postgresError(
    'insert or update on table "webhooks" violates foreign key constraint "webhooks_user_id_fkey"',
    { code: '23503', detail: `Failing row contains (${OWN_SECRET}).`, constraint_name: 'webhooks_user_id_fkey', table_name: 'webhooks', where: `secret ${OWN_SECRET}` },
    PARAMS,
  );
  const wrapped = new DrizzleQueryError(INSERT, [...PARAMS.slice(0, 4), SECRET], cause);

  it("Drizzle's wrapper lists every parameter in its message and stack: none survives", () => {
    expect(wrapped.message).toContain(SECRET); // what was logged before
    expect(wrapped.stack).toContain(SECRET);
    const line = lineOf(wrapped);
    for (const s of [SECRET, OWN_SECRET, INSERT, 'values ($1']) expect(line).not.toContain(s);
  });

  it('keeps what tells what happened: type, SQLSTATE, the server message, the constraint, a stack', () => {
    const logged = errorForLog(wrapped) as Record<string, unknown>;
    expect(logged).toMatchObject({
      type: 'DrizzleQueryError',
      code: '23503',
      message: 'failed query (SQLSTATE 23503): insert or update on table "webhooks" violates foreign key constraint "webhooks_user_id_fkey"',
      cause: { type: 'Error', code: '23503', constraint_name: 'webhooks_user_id_fkey', table_name: 'webhooks', severity: 'ERROR' },
    });
    expect(String(logged.stack)).toMatch(/^Error: failed query \(SQLSTATE 23503\): insert or update[^\n]*\n {4}at /);
    // detail and where quote row values; they are not kept at all
    expect(logged.cause).not.toHaveProperty('detail');
    expect(logged.cause).not.toHaveProperty('where');
  });

  it("a server message that quotes a parameter loses the value, keeps the rest", () => {
    const err = postgresError(`invalid input syntax for type uuid: "${OWN_SECRET}"`, { code: '22P02' }, [OWN_SECRET]);
    expect(errorForLog(err)).toMatchObject({ code: '22P02', message: 'invalid input syntax for type uuid: "[redacted]"' });
    expect(errorMessage(err)).toBe('invalid input syntax for type uuid: "[redacted]"');
  });

  it("PGlite's errors carry params and query as enumerable fields: not copied", () => {
    const err = Object.assign(new Error('duplicate key value violates unique constraint "webhooks_user_url_key"'), {
      code: '23505',
      query: INSERT,
      params: PARAMS,
      detail: `Key (user_id, url)=(x, ${OWN_SECRET}) already exists.`,
    });
    const line = lineOf(err);
    expect(line).not.toContain(OWN_SECRET);
    expect(line).not.toContain('insert into');
    expect(errorForLog(err)).toMatchObject({ code: '23505', message: expect.stringContaining('webhooks_user_url_key') });
  });

  it('errorMessage (log fields, stored error columns) says the same safe message', () => {
    expect(errorMessage(wrapped)).toBe(
      'failed query (SQLSTATE 23503): insert or update on table "webhooks" violates foreign key constraint "webhooks_user_id_fkey"',
    );
    const jsonb = new DrizzleQueryError('insert into "outbox" ("payload") values ($1)', [JSON.stringify({ task: { title: OWN_SECRET } })], new Error(`bad: ${OWN_SECRET}`));
    expect(errorMessage(jsonb)).toBe('failed query: bad: [redacted]');
  });
});

describe('errorForLog: failed outbound calls and other errors', () => {
  it('a credential in a URL, a Bearer token, a JWT, a PEM key or a webhook secret in any message', () => {
    const jwt = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl';
    const pem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+secretkeymaterial\n-----END PRIVATE KEY-----';
    const err = new Error(
      `connect to smtp://mailer:smtp-pass-9@mail.example:587 and amqp://guest:guest@127.0.0.1:5672 failed; sent Authorization: Bearer ${jwt}, ${SECRET}, Basic dXNlcjpwYXNz; key ${pem}`,
    );
    const line = lineOf(err);
    for (const s of ['smtp-pass-9', 'mailer:', 'guest:guest', jwt, SECRET, 'dXNlcjpwYXNz', 'secretkeymaterial']) expect(line, s).not.toContain(s);
    expect((errorForLog(err) as { message: string }).message).toMatch(/^connect to smtp:\/\/\[redacted\]@mail\.example:587 and amqp:\/\/\[redacted\]@127\.0\.0\.1:5672 failed/);
  });

  it("fields that are not on the short list are dropped: Node's input of a bad URL, a request's options", () => {
    let urlError: unknown;
    try {
      new URL('smtp://mailer:smtp-pass-9@[not-a-host');
    } catch (err) {
      urlError = Object.assign(err as Error, { options: { auth: { user: 'mailer', pass: 'smtp-pass-9' } }, headers: { authorization: 'Bearer abc.def' } });
    }
    expect(String((urlError as { input: string }).input)).toContain('smtp-pass-9');
    const line = lineOf(urlError);
    expect(line).not.toContain('smtp-pass-9');
    expect(line).not.toContain('abc.def');
    expect(errorForLog(urlError)).toMatchObject({ type: 'TypeError', code: 'ERR_INVALID_URL' });
  });

  it("a nodemailer authentication failure keeps its code, command and response code", () => {
    const err = Object.assign(new Error('Invalid login: 535 Authentication failed'), { code: 'EAUTH', command: 'AUTH PLAIN', responseCode: 535, response: '535 Authentication failed' });
    expect(errorForLog(err)).toMatchObject({ type: 'Error', code: 'EAUTH', command: 'AUTH PLAIN', responseCode: 535, message: 'Invalid login: 535 Authentication failed' });
  });

  it('the errors of an AggregateError (a refused connection on every address) and a cause chain', () => {
    const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}:1`), { code: 'ECONNREFUSED', syscall: 'connect', address, port: 1 });
    const agg = new AggregateError([refused('::1'), refused('127.0.0.1')], '');
    const outer = new Error('delivery failed', { cause: agg });
    expect(errorForLog(outer)).toMatchObject({
      message: 'delivery failed',
      cause: { type: 'AggregateError', errors: [{ code: 'ECONNREFUSED', address: '::1', port: 1 }, { code: 'ECONNREFUSED', address: '127.0.0.1' }] },
    });
  });

  it('a string under err is redacted as text; other values pass', () => {
    expect(errorForLog('redis://:hunter2-pass@cache:6379 refused')).toBe('redis://[redacted]@cache:6379 refused');
    expect(errorForLog(undefined)).toBeUndefined();
    expect(errorForLog(42)).toBe(42);
  });

  it('the app logger uses it for err and error', () => {
    const options = loggerOptions({ logLevel: 'info', env: 'test', logstash: undefined });
    const serializers = options.serializers as Record<string, (v: unknown) => unknown>;
    expect(serializers.err!(new DrizzleQueryError(INSERT, [SECRET], undefined))).toMatchObject({ message: 'failed query' });
    expect(serializers.error!(`smtp://u:${SECRET}@h`)).toBe('smtp://[redacted]@h');
  });
});

describe('redactText', () => {
  it('leaves ordinary text alone, emails and plain URLs included', () => {
    for (const text of ['connect ECONNREFUSED 127.0.0.1:5432', 'user alice@example.com not found', 'GET https://example.com/a?b=c failed', 'HTTP 500']) {
      expect(redactText(text)).toBe(text);
    }
  });

  it('replaces each given value, longest first, and ignores values too short to be secrets', () => {
    expect(redactText('abcdef and abc and abcdefgh', ['abc', 'abcdef', 'abcdefgh'])).toBe('[redacted] and abc and [redacted]');
  });
});
