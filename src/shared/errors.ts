// Typed errors thrown by services; the HTTP layer maps them to RFC 9457 problem details.
import { safeErrorMessage } from './redaction.js';

export interface FieldError {
  /** Where the bad value is: body, query, params or headers. */
  in: string;
  /** The field's name (dotted path for nested values), or '' for the whole document. */
  field: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    detail?: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail ?? title);
    this.name = 'AppError';
  }
}

export const badRequest = (detail: string, errors?: FieldError[]) =>
  new AppError(400, 'validation-error', 'Invalid request', detail, errors);
export const unauthorized = (detail = 'Authentication is required', code = 'unauthorized') =>
  new AppError(401, code, 'Unauthorized', detail, undefined, { 'www-authenticate': 'Bearer' });
/**
 * The access token verifies but its account no longer exists (deleted while the token still
 * lives, up to JWT_ACCESS_TTL_SECONDS): every authenticated route answers this once it notices.
 */
export const accountGone = () => unauthorized('The account no longer exists', 'account-gone');
export const forbidden = (detail = 'You are not allowed to do this') => new AppError(403, 'forbidden', 'Forbidden', detail);
export const notFound = (what = 'Resource') => new AppError(404, 'not-found', 'Not Found', `${what} not found`);
export const conflict = (detail: string, code = 'conflict') => new AppError(409, code, 'Conflict', detail);
export const preconditionFailed = (detail = 'The resource has changed since the given ETag') =>
  new AppError(412, 'precondition-failed', 'Precondition Failed', detail);
export const serviceUnavailable = (detail: string, retryAfterSeconds = 5) =>
  new AppError(503, 'service-unavailable', 'Service Unavailable', detail, undefined, {
    'retry-after': String(retryAfterSeconds),
  });
export const tooManyRequests = (detail: string, retryAfterSeconds: number) =>
  new AppError(429, 'too-many-requests', 'Too Many Requests', detail, undefined, {
    'retry-after': String(retryAfterSeconds),
  });

/**
 * The process refuses to start, and its message says what to do about it (the CLI prints the
 * message alone, without a stack, and exits 1).
 */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/**
 * What a caught value says, for a log field or a stored error column: never a failed statement's
 * parameters or SQL, nor a credential (see safeErrorMessage in src/shared/redaction.ts).
 */
export const errorMessage = (err: unknown): string => safeErrorMessage(err);
