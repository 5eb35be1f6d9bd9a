// Request bodies are JSON, read exactly as sent. Fastify alone would parse a text/plain body as a
// string (a confusing 400 "must be object"), a gzip body as malformed JSON, and any charset as
// UTF-8. Here anything but application/json is a 415, so is a content coding other than identity
// (RFC 9110 §15.5.16, with Accept-Encoding saying what is read) and a charset other than UTF-8
// (RFC 8259 §8.1); bytes that are not UTF-8 are a 400 rather than U+FFFD stored in a task.
// Routes that take a body, and every route whose method can carry one (a client may send a body
// the route does not read: it is still parsed, so it can still be too large or unreadable),
// document the 413 and 415 answers.
import { TextDecoder } from 'node:util';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../shared/errors.js';
import { problems } from './responses.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function charsetOf(contentType: string): string | undefined {
  for (const param of contentType.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (eq !== -1 && param.slice(0, eq).trim().toLowerCase() === 'charset') return param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return undefined;
}

/** Whether a charset label names UTF-8 (the WHATWG labels: utf-8, utf8, unicode-1-1-utf-8, ...). */
function isUtf8(label: string): boolean {
  try {
    return new TextDecoder(label).encoding === 'utf-8';
  } catch {
    return false;
  }
}

const unsupported = (detail: string, headers?: Record<string, string>) =>
  new AppError(415, 'unsupported-media-type', 'Unsupported Media Type', detail, undefined, headers);

/** Why this body cannot be read, or undefined when it can. */
function refusal(request: FastifyRequest): AppError | undefined {
  const codings = (request.headers['content-encoding'] ?? '').split(',').map((c) => c.trim().toLowerCase()).filter(Boolean);
  const coded = codings.filter((c) => c !== 'identity');
  if (coded.length > 0) return unsupported(`Content-Encoding ${coded.join(', ')} is not supported; send the body uncompressed`, { 'accept-encoding': 'identity' });
  const charset = charsetOf(request.headers['content-type'] ?? '');
  if (charset !== undefined && !isUtf8(charset)) return unsupported(`charset ${charset} is not supported; JSON bodies are UTF-8`);
  return undefined;
}

export const jsonBodyPlugin = fp(
  (app: FastifyInstance) => {
    const parseJson = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser(['application/json', 'text/plain']);
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      const refused = refusal(request);
      if (refused) return done(refused, undefined);
      let text: string;
      try {
        text = strictUtf8.decode(body as Buffer);
      } catch {
        return done(new AppError(400, 'malformed-json', 'Invalid request', 'The body is not valid UTF-8'), undefined);
      }
      void parseJson(request, text, done);
    });

    app.addHook('onRoute', (route) => {
      const response = route.schema?.response as Record<string, unknown> | undefined;
      const methods = [route.method].flat();
      if (!response || !(route.schema?.body || methods.some((m) => BODY_METHODS.has(m)))) return;
      const missing = [413, 415].filter((status) => !(status in response));
      if (missing.length > 0) route.schema = { ...route.schema, response: { ...response, ...problems(...missing) } };
    });
  },
  { name: 'json-body' },
);
