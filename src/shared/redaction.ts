// What an error, or a line of text, may carry into a log line or a stored error column. Secrets
// reach errors in two ways. A failed statement carries its parameters: postgres.js keeps them as
// `parameters` (and `args`), PGlite as `params`, and Drizzle wraps either in an error whose
// `params` and message ("Failed query: <sql>\nparams: <values>") list them all, a webhook's secret
// or a password hash among them. And a message may quote a credential: a URL's user:password
// (SMTP_URL, DATABASE_URL, AMQP_URL), a Bearer token, a JWT, a PEM private key.
// observability/logging.ts builds the logged form of an error from these; errorMessage
// (shared/errors.ts) is safeErrorMessage.
import { pgErrorCode } from './db-errors.js';

export const REDACTED = '[redacted]';

/** Statement values shorter than this stay in messages: too short to be a secret, too common to scrub. */
const MIN_VALUE_LENGTH = 4;

/** Credentials recognisable by their shape, wherever they appear in a text. */
const CREDENTIALS: readonly [RegExp, string][] = [
  [/-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g, `${REDACTED} private key`],
  // user:password@ (or a user alone) in any URL
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]+@/gi, `$1${REDACTED}@`],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/-]+=*/gi, `$1 ${REDACTED}`],
  // a JWT (three base64url parts, the first a JSON object)
  [/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
  // a generated webhook secret
  [/\bwhsec_[A-Za-z0-9_-]+/g, REDACTED],
];

/** text without any of `values` (statement parameters) and without credentials recognisable by shape. */
export function redactText(text: string, values: readonly string[] = []): string {
  let out = text;
  // longest first: a value that contains a shorter one goes whole
  const longestFirst = values.filter((v) => v.length >= MIN_VALUE_LENGTH).sort((a, b) => b.length - a.length);
  for (const v of longestFirst) out = out.split(v).join(REDACTED);
  for (const [pattern, by] of CREDENTIALS) out = out.replace(pattern, by);
  return out;
}

const VALUE_KEYS = ['params', 'parameters', 'args'] as const;

/** Every string a failed statement was given, anywhere in the error's cause chain, longest first. */
export function statementValues(err: unknown): string[] {
  const found = new Set<string>();
  const add = (v: unknown, depth: number): void => {
    if (depth > 4 || v === null || v === undefined) return;
    if (typeof v === 'string') {
      found.add(v);
      // a jsonb parameter arrives as its JSON text: its strings may be quoted one by one
      if (/^\s*[[{]/.test(v)) {
        try {
          add(JSON.parse(v) as unknown, depth + 1);
        } catch {
          // not JSON after all
        }
      }
    } else if (Array.isArray(v)) for (const x of v) add(x, depth + 1);
    else if (typeof v === 'object' && !(v instanceof Date) && !ArrayBuffer.isView(v)) for (const x of Object.values(v)) add(x, depth + 1);
  };
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    for (const key of VALUE_KEYS) add(Reflect.get(e, key), 0);
    e = Reflect.get(e, 'cause');
  }
  return [...found].filter((v) => v.length >= MIN_VALUE_LENGTH).sort((a, b) => b.length - a.length);
}

/** Drizzle's wrapper of a failed statement: its message is the SQL and every parameter. */
const isFailedQuery = (err: Error) => err.message.startsWith('Failed query:') && 'params' in err;

function describe(err: unknown, depth: number): string {
  if (!(err instanceof Error)) return String(err);
  if (!isFailedQuery(err)) return err.message;
  const code = pgErrorCode(err);
  const cause = err.cause !== undefined && depth < 4 ? describe(err.cause, depth + 1) : undefined;
  return `failed query${code ? ` (SQLSTATE ${code})` : ''}${cause ? `: ${cause}` : ''}`;
}

/**
 * An error's message, safe to log or store: a failed statement says its SQLSTATE and the server's
 * message (without the SQL and the parameters); no statement value and no credential survives.
 */
export function safeErrorMessage(err: unknown, values: readonly string[] = statementValues(err)): string {
  return redactText(describe(err, 0), values);
}

/** The stack with the safe message in its first line, and its frames redacted alike. */
export function safeStack(err: Error, values: readonly string[] = statementValues(err)): string | undefined {
  if (typeof err.stack !== 'string') return undefined;
  const header = `${err.name}: ${err.message}`;
  let frames: string;
  if (err.stack.startsWith(header)) frames = err.stack.slice(header.length);
  else {
    const at = err.stack.indexOf('\n    at ');
    frames = at >= 0 ? err.stack.slice(at) : '';
  }
  return `${err.name}: ${safeErrorMessage(err, values)}${redactText(frames, values)}`;
}
