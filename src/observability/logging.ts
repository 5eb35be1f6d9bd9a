// Logs: pino JSON lines on stdout with the seed's base fields (service, environment) plus version
// and hostname; secrets redacted before anything is written; optionally also shipped as JSON
// lines over TCP to a Logstash `tcp` input (codec json_lines).
//
// No secret reaches a line: known fields are censored (REDACTED_PATHS), and an error is logged
// through errorForLog, which keeps its type, a safe message and stack, its SQLSTATE and a few
// plain fields, and drops everything else (a failed statement's SQL and parameters above all).
import { hostname } from 'node:os';
import type { FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';
import { pgErrorCode } from '../shared/db-errors.js';
import { redactText, safeErrorMessage, safeStack, statementValues } from '../shared/redaction.js';
import { VERSION } from '../version.js';
import { traceLogFields } from './trace-context.js';

/** Paths whose values never reach a log line, whatever logs them. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'password',
  'currentPassword',
  'refreshToken',
  'accessToken',
  '*.password',
  '*.currentPassword',
  '*.refreshToken',
  '*.accessToken',
  '*.token',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'privateKeyPem',
  '*.privateKeyPem',
  'smtpUrl',
  '*.smtpUrl',
];

/** Plain fields of an error worth keeping (codes, where a connection went, which constraint). */
const ERROR_FIELDS = [
  'code',
  'status',
  'statusCode',
  'errno',
  'syscall',
  'address',
  'port',
  'severity',
  'constraint',
  'constraint_name',
  'table',
  'table_name',
  'column',
  'column_name',
  'schema_name',
  'routine',
  'responseCode',
  'command',
  'reason',
] as const;

/**
 * An error as a log line carries it: type, message and stack (safe: see shared/redaction.ts),
 * the SQLSTATE of a failed statement, the plain fields above, its cause and, for an
 * AggregateError, its first errors. Nothing else of the error is copied: not a statement's SQL
 * or parameters, not a request's options or headers. A string is redacted as text.
 */
export function errorForLog(value: unknown, inherited: readonly string[] = [], depth = 0): unknown {
  if (typeof value === 'string') return redactText(value, inherited);
  if (!(value instanceof Error)) {
    return value !== null && typeof value === 'object' ? { type: 'Object', message: safeErrorMessage(value, inherited) } : value;
  }
  const values = [...new Set([...inherited, ...statementValues(value)])];
  const out: Record<string, unknown> = { type: value.constructor.name || value.name, message: safeErrorMessage(value, values) };
  const stack = safeStack(value, values);
  if (stack !== undefined) out.stack = stack;
  const code = pgErrorCode(value);
  if (code !== undefined) out.code = code;
  for (const key of ERROR_FIELDS) {
    if (key === 'code' && code !== undefined) continue;
    const v: unknown = Reflect.get(value, key);
    if (typeof v === 'number' || typeof v === 'boolean') out[key] = v;
    else if (typeof v === 'string') out[key] = redactText(v, values);
  }
  if (depth < 3) {
    if (value.cause !== undefined) out.cause = errorForLog(value.cause, values, depth + 1);
    if (value instanceof AggregateError) out.errors = (value.errors as unknown[]).slice(0, 5).map((e) => errorForLog(e, values, depth + 1));
  }
  return out;
}

/** For every logger of the process: errors (under err or error) through errorForLog. */
export const ERROR_SERIALIZERS = { err: (v: unknown) => errorForLog(v), error: (v: unknown) => errorForLog(v) };

type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>;

export function loggerOptions(config: Pick<Config, 'logLevel' | 'env' | 'logstash'>): LoggerOptions & Record<string, unknown> {
  const options: Record<string, unknown> = {
    level: config.logLevel,
    base: { service: 'task-api', environment: config.env, version: VERSION, hostname: hostname(), pid: process.pid },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: ERROR_SERIALIZERS,
    // trace_id and span_id of the active span, when tracing is on (see observability/tracing.ts).
    mixin: traceLogFields,
  };
  if (config.logstash) {
    // Both targets run in a worker thread; redaction happens before records reach them.
    options.transport = {
      targets: [
        { target: 'pino/file', level: config.logLevel, options: { destination: 1 } },
        {
          target: 'pino-socket',
          level: config.logLevel,
          options: { address: config.logstash.host, port: config.logstash.port, mode: 'tcp', reconnect: true, recovery: true },
        },
      ],
    };
  }
  return options;
}

/** X-Request-Id from the proxy is kept only when it is a plausible id (no log injection). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export function requestIdFrom(header: string | string[] | undefined, generate: () => string): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : generate();
}
