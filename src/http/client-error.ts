// Node's HTTP parser refuses some requests before Fastify sees them: headers over the size limit,
// a malformed request line or header, an unknown method, a request that took too long. Node (and
// Fastify's default handler) would answer with a bare status line or an ad-hoc JSON body; this
// answers with a problem and a request id like every other error, written straight to the socket.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { statusProblem, type ProblemBody } from './problem.js';

interface ParserError extends Error {
  code?: string;
  /** The bytes the parser was reading (a Buffer): never logged, they may hold credentials. */
  rawPacket?: unknown;
}

// RFC 9110 §5.6.2: a method is a token.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function answerOf(err: ParserError): { status: number; detail: string } {
  switch (err.code ?? '') {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, detail: 'The request headers are larger than the server accepts' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, detail: 'The request did not arrive in time' };
    case 'HPE_INVALID_METHOD': {
      // A well-formed method this server does not know is 501 (RFC 9110 §9.1); anything else is garbage.
      const method = Buffer.isBuffer(err.rawPacket) ? (err.rawPacket.toString('latin1').split(' ', 1)[0] ?? '') : '';
      return TOKEN.test(method)
        ? { status: 501, detail: `The method ${method} is not implemented` }
        : { status: 400, detail: 'The request line is malformed' };
    }
    default:
      return { status: 400, detail: 'The request could not be parsed as HTTP/1.1' };
  }
}

/** Fastify's clientErrorHandler option: `this` is the Fastify instance. */
export function answerClientError(this: FastifyInstance, err: ParserError, socket: Socket): void {
  // A reset connection has no one left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const { status, detail } = answerOf(err);
  const requestId = randomUUID();
  this.log.info({ reqId: requestId, statusCode: status, code: err.code }, 'request refused by the HTTP parser');
  // As Node does: never write into a response already under way on this connection.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify({ ...statusProblem(status, detail), requestId } satisfies ProblemBody);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        'Content-Type: application/problem+json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\n` +
        'X-Content-Type-Options: nosniff\r\n' +
        'Cache-Control: no-store\r\n' +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy(err);
}
