// Logs: pino JSON lines on stdout with the seed's base fields (service, environment) plus version
// and hostname; secrets redacted before anything is written; optionally also shipped as JSON
// lines over TCP to a Logstash `tcp` input (codec json_lines).
import { hostname } from 'node:os';
import type { FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';
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
];

type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>;

export function loggerOptions(config: Pick<Config, 'logLevel' | 'env' | 'logstash'>): LoggerOptions & Record<string, unknown> {
  const options: Record<string, unknown> = {
    level: config.logLevel,
    base: { service: 'task-api', environment: config.env, version: VERSION, hostname: hostname(), pid: process.pid },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
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
