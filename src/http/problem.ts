// One error handler: typed errors and framework errors become RFC 9457 problem+json. A 5xx is
// logged with the request's context and answered without any internal detail. Every problem
// carries the request id (also in X-Request-Id), so a caller can quote it and we can find the log line.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import { isDatabaseUnavailable } from '../shared/db-errors.js';
import { AppError, serviceUnavailable, type FieldError } from '../shared/errors.js';
import { fieldErrors } from './validation.js';

export const PROBLEM_TYPE_BASE = 'urn:task-api:problem:';

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    requestId: Type.String({ description: 'The X-Request-Id of this response: quote it when reporting a problem' }),
    errors: Type.Optional(
      Type.Array(Type.Object({ in: Type.String(), field: Type.String(), message: Type.String() })),
    ),
  },
  { $id: 'Problem' },
);

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  /** The request's path; absent when the request could not be parsed at all. */
  instance?: string;
  requestId: string;
  errors?: FieldError[];
}

/** What a handler says; the request's path and id are added when it is sent. */
type ProblemContent = Omit<ProblemBody, 'instance' | 'requestId'>;

const TITLES: Record<number, string> = {
  400: 'Invalid request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

const slug = (title: string) => title.toLowerCase().replace(/[^a-z0-9]+/g, '-');

/** A problem named after its status alone (the titles above), for answers that have no error object. */
export function statusProblem(status: number, detail: string): ProblemContent {
  const title = TITLES[status] ?? 'Error';
  return { type: `${PROBLEM_TYPE_BASE}${slug(title)}`, title, status, detail };
}

export function sendProblem(reply: FastifyReply, body: ProblemContent): FastifyReply {
  const problem: ProblemBody = { ...body, instance: reply.request.url.split('?')[0] ?? '/', requestId: reply.request.id };
  // Serialised here, not by a route's response schema, so the shape is the same everywhere.
  return reply.code(body.status).type('application/problem+json').send(JSON.stringify(problem));
}

function fromFrameworkError(err: FastifyError): ProblemContent {
  if (err.validation) {
    const errors = fieldErrors(err.validation as never, err.validationContext);
    const names = errors.map((e) => (e.field ? `${e.in}.${e.field}` : e.in)).join(', ');
    return { type: `${PROBLEM_TYPE_BASE}validation-error`, title: 'Invalid request', status: 400, detail: `Invalid ${names}`, errors };
  }
  const status = err.statusCode ?? 500;
  const title = TITLES[status] ?? 'Error';
  const code = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'malformed-json' : slug(title);
  return { type: `${PROBLEM_TYPE_BASE}${code}`, title, status, detail: err.message };
}

/** For Fastify's frameworkErrors option: router errors (bad URL encoding, over-long path parameter)
 * are answered before any hook or error handler, so they would otherwise not be problem details
 * and would lack the headers the hooks add. */
export function sendFrameworkProblem(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void reply.header('x-request-id', request.id).header('x-content-type-options', 'nosniff');
  void sendProblem(reply, fromFrameworkError(err));
}

export const problemPlugin = fp(
  (app: FastifyInstance) => {
    app.setErrorHandler((thrown: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      // The database (or PgBouncer) unreachable, restarting or out of connections: a 503 the
      // client may retry, not a 500 (src/shared/db-errors.ts). The cause is logged as a warning.
      const err: FastifyError | AppError = isDatabaseUnavailable(thrown)
        ? Object.assign(serviceUnavailable('The database is unavailable; retry shortly', 1), { cause: thrown })
        : thrown;
      if (err instanceof AppError) {
        if (err.headers) void reply.headers(err.headers);
        if (err.status >= 500) request.log.warn({ err }, err.message);
        return sendProblem(reply, {
          type: `${PROBLEM_TYPE_BASE}${err.code}`,
          title: err.title,
          status: err.status,
          detail: err.message,
          ...(err.errors ? { errors: err.errors } : {}),
        });
      }
      const status = err.statusCode ?? 500;
      if (status >= 500) {
        request.failure = err; // logged with its stack on the request's line (request-log.ts)
        return sendProblem(reply, {
          type: `${PROBLEM_TYPE_BASE}internal-error`,
          title: 'Internal Server Error',
          status: 500,
          detail: 'An unexpected error occurred; it has been logged',
        });
      }
      return sendProblem(reply, fromFrameworkError(err));
    });

    app.setNotFoundHandler((request, reply) =>
      sendProblem(reply, {
        type: `${PROBLEM_TYPE_BASE}not-found`,
        title: 'Not Found',
        status: 404,
        detail: `No route for ${request.method} ${request.url.split('?')[0]}`,
      }),
    );
  },
  { name: 'problem' },
);
