// The edges of HTTP: wrong methods (405 with Allow) and OPTIONS, problem details with the request
// id for everything the server refuses (Node's parser included, over a real socket), content
// codings and charsets (415), and CORS off by default and on for listed origins.
import { connect } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, createTestApp, register, type SessionBody, type TestApp } from '../helpers/app.js';
import type { PageBody, ProblemBody, TaskBody } from '../helpers/bodies.js';

let t: TestApp;
let alice: SessionBody;
let task: TaskBody;

beforeAll(async () => {
  t = await createTestApp();
  alice = await register(t.app);
  task = (await as(t.app, alice.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'Existing' } })).json<TaskBody>();
});
afterAll(() => t?.close());

const req = () => as(t.app, alice.accessToken);
const tasks = async () => (await req()({ method: 'GET', url: '/v1/tasks?limit=100' })).json<PageBody>().data;

interface Answer {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
}

/** A problem+json answer whose body carries the request id of the X-Request-Id header. */
function expectProblem(res: Answer, status: number): ProblemBody & { requestId: string } {
  expect(res.statusCode, res.body).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(res.body) as ProblemBody & { requestId: string };
  expect(problem).toMatchObject({ status, type: expect.stringMatching(/^urn:task-api:problem:\S+$/), title: expect.stringMatching(/\S/) });
  expect(res.headers['x-request-id']).toMatch(/\S/);
  expect(problem.requestId).toBe(res.headers['x-request-id']);
  return problem;
}

const corsHeaders = (res: LightMyRequestResponse) => Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));

describe('methods', () => {
  const wrong: [string, string, string][] = [
    ['PUT', '/v1/tasks', 'GET, HEAD, OPTIONS, POST'],
    ['DELETE', '/v1/tasks', 'GET, HEAD, OPTIONS, POST'],
    ['PUT', '/v1/tasks/:id', 'DELETE, GET, HEAD, OPTIONS, PATCH'],
    ['POST', '/v1/tasks/:id', 'DELETE, GET, HEAD, OPTIONS, PATCH'],
    ['GET', '/v1/auth/login', 'OPTIONS, POST'],
    ['POST', '/health', 'GET, HEAD, OPTIONS'],
    ['TRACE', '/v1/users/me', 'DELETE, GET, HEAD, OPTIONS, PATCH'],
    // Known to Node's parser, routed nowhere.
    ['PURGE', '/health/live', 'GET, HEAD, OPTIONS'],
  ];

  for (const [method, path, allow] of wrong) {
    it(`${method} ${path} is a 405 with Allow: ${allow}, with or without a token`, async () => {
      const url = path.replace(':id', task.id);
      for (const res of [await req()({ method, url, payload: { title: 'changed' } }), await t.app.inject({ method, url })]) {
        const problem = expectProblem(res, 405);
        expect(problem.type).toBe('urn:task-api:problem:method-not-allowed');
        expect(problem.instance).toBe(url);
        expect(res.headers.allow).toBe(allow);
      }
    });
  }

  it('the refused requests changed nothing', async () => {
    expect(await tasks()).toEqual([task]);
  });

  it('an unknown path is still a 404 for every method', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'OPTIONS'] as const) {
      const res = await req()({ method, url: '/nope' });
      expect(expectProblem(res, 404).instance).toBe('/nope');
      expect(res.headers.allow).toBeUndefined();
    }
  });

  it('HEAD answers wherever GET does, without a body; elsewhere it is a 405', async () => {
    const head = await req()({ method: 'HEAD', url: `/v1/tasks/${task.id}` });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers.etag).toBe(`"${task.version}"`);
    const refused = await t.app.inject({ method: 'HEAD', url: '/v1/auth/login' });
    expect(refused.statusCode).toBe(405);
    expect(refused.headers.allow).toBe('OPTIONS, POST');
    expect(refused.body).toBe('');
  });

  it('OPTIONS on a known path is a 204 with Allow, without a token', async () => {
    const res = await t.app.inject({ method: 'OPTIONS', url: '/v1/tasks' });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect(res.headers.allow).toBe('GET, HEAD, OPTIONS, POST');
    expect(res.headers['x-request-id']).toMatch(/\S/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const item = await t.app.inject({ method: 'OPTIONS', url: `/v1/tasks/${task.id}?x=1` });
    expect(item.statusCode).toBe(204);
    expect(item.headers.allow).toBe('DELETE, GET, HEAD, OPTIONS, PATCH');
  });
});

describe('every error is a problem carrying the request id', () => {
  it('from validation, auth, routing, parsing and limits', async () => {
    const json = { 'content-type': 'application/json' };
    const answers: [number, Promise<Answer>][] = [
      [400, req()({ method: 'POST', url: '/v1/tasks', payload: { title: 5 } })],
      [400, req()({ method: 'POST', url: '/v1/tasks', headers: json, payload: '{"title": ' })],
      [400, req()({ method: 'GET', url: '/v1/tasks/%E0%A4%A' })],
      [401, t.app.inject({ method: 'GET', url: '/v1/tasks' })],
      [404, req()({ method: 'GET', url: '/v1/tasks/01900000-0000-7000-8000-000000000000' })],
      [405, req()({ method: 'PUT', url: '/v1/tasks' })],
      [413, req()({ method: 'POST', url: '/v1/tasks', headers: json, payload: JSON.stringify({ title: 'big', description: 'x'.repeat(t.config.http.bodyLimit) }) })],
      [414, req()({ method: 'GET', url: `/v1/tasks/${'a'.repeat(300)}` })],
      [415, req()({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'text/plain' }, payload: 'title' })],
    ];
    for (const [status, pending] of answers) expectProblem(await pending, status);
  });

  it("the caller's X-Request-Id is the body's requestId", async () => {
    const res = await req()({ method: 'PUT', url: '/v1/tasks', headers: { 'x-request-id': 'edge-405-1' } });
    expect(expectProblem(res, 405).requestId).toBe('edge-405-1');
  });

  describe("refused by Node's HTTP parser, on a real socket", () => {
    let port: number;
    beforeAll(async () => {
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      port = (t.app.server.address() as { port: number }).port;
    });

    /** Writes raw bytes and reads the answer until the server closes the connection. */
    function exchange(raw: string): Promise<Answer & { statusLine: string }> {
      return new Promise((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        // The server may reset a connection it refused; what it wrote before is still the answer.
        socket.on('error', (err) => (chunks.length === 0 ? reject(err) : undefined));
        socket.on('close', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const [head = '', body = ''] = text.split('\r\n\r\n', 2);
          const [statusLine = '', ...lines] = head.split('\r\n');
          const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
          resolve({ statusLine, statusCode: Number(statusLine.split(' ')[1]), headers, body });
        });
        socket.write(raw);
      });
    }

    const cases: [string, string, number][] = [
      ['headers over the size limit', `GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['a method that is not a token', 'G@T /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
      ['an unknown method', 'BREW /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n', 501],
      ['a header line without a colon', 'GET /health/live HTTP/1.1\r\nHost: localhost\r\nNot a header\r\n\r\n', 400],
      ['a request line that is not HTTP', 'hello\r\n\r\n', 400],
    ];
    for (const [name, raw, status] of cases) {
      it(`${name}: ${status}`, async () => {
        const res = await exchange(raw);
        expect(res.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
        const problem = expectProblem(res, status);
        expect(problem.instance).toBeUndefined();
        expect(res.headers.connection).toBe('close');
        expect(res.headers['x-content-type-options']).toBe('nosniff');
      });
    }

    it('a method Node knows but no route has is a 405 from the application', async () => {
      const res = await exchange('PURGE /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      expectProblem(res, 405);
      expect(res.headers.allow).toBe('GET, HEAD, OPTIONS');
    });

    it('the server still answers afterwards', async () => {
      const res = await exchange('GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      expect(res.statusCode).toBe(200);
    });
  });
});

describe('body encodings', () => {
  const post = (headers: Record<string, string>, payload: string | Buffer) =>
    req()({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json', ...headers }, payload });
  const body = JSON.stringify({ title: 'Encoded café' });

  let before: TaskBody[];
  beforeAll(async () => {
    before = await tasks();
  });

  const codings: [string, (b: Buffer) => Buffer][] = [
    ['gzip', (b) => gzipSync(b)],
    ['br', (b) => brotliCompressSync(b)],
    ['deflate', (b) => deflateSync(b)],
    ['identity, gzip', (b) => gzipSync(b)],
  ];
  for (const [coding, encode] of codings) {
    it(`Content-Encoding ${coding} is a 415 with Accept-Encoding: identity`, async () => {
      const res = await post({ 'content-encoding': coding }, encode(Buffer.from(body)));
      const problem = expectProblem(res, 415);
      expect(problem.type).toBe('urn:task-api:problem:unsupported-media-type');
      expect(problem.detail).toContain(coding.replace('identity, ', ''));
      expect(res.headers['accept-encoding']).toBe('identity');
    });
  }

  for (const charset of ['iso-8859-1', 'windows-1252', 'utf-16le', '"latin1"', 'nonsense']) {
    it(`charset=${charset} is a 415 naming the charset`, async () => {
      const res = await post({ 'content-type': `application/json; charset=${charset}` }, Buffer.from(body, 'latin1'));
      expect(expectProblem(res, 415).detail).toContain(charset.replaceAll('"', ''));
    });
  }

  it('bytes that are not UTF-8 are a 400, not replacement characters', async () => {
    const res = await post({}, Buffer.from(body, 'latin1'));
    const problem = expectProblem(res, 400);
    expect(problem.type).toBe('urn:task-api:problem:malformed-json');
    expect(problem.detail).toContain('UTF-8');
  });

  it('none of them stored anything', async () => {
    expect(await tasks()).toEqual(before);
  });

  it('identity and the UTF-8 labels are read', async () => {
    const cases: Record<string, string>[] = [
      { 'content-encoding': 'identity' },
      { 'content-type': 'application/json; charset=utf-8' },
      { 'content-type': 'application/json;charset="UTF-8"' },
      { 'content-type': 'application/json; charset=utf8' },
    ];
    for (const headers of cases) {
      const res = await post(headers, Buffer.from(body));
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json<TaskBody>().title).toBe('Encoded café');
    }
  });
});

describe('CORS', () => {
  const ORIGIN = 'https://app.example.com';

  it('is off by default: no Access-Control-* header and no Vary: Origin, preflight or not', async () => {
    const get = await req()({ method: 'GET', url: '/v1/tasks', headers: { origin: ORIGIN } });
    const preflight = await t.app.inject({ method: 'OPTIONS', url: '/v1/tasks', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
    expect(get.statusCode).toBe(200);
    expect(preflight.statusCode).toBe(204);
    for (const res of [get, preflight]) {
      expect(corsHeaders(res)).toEqual([]);
      expect(String(res.headers.vary ?? '')).not.toMatch(/origin/i);
    }
  });

  describe('with CORS_ORIGINS', () => {
    let c: TestApp;
    let bob: SessionBody;
    beforeAll(async () => {
      c = await createTestApp({
        env: { CORS_ORIGINS: `${ORIGIN}, http://localhost:5173`, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_POINTS: '1000', RATE_LIMIT_DURATION: '600' },
      });
      bob = await register(c.app);
    });
    afterAll(() => c?.close());

    const vary = (res: LightMyRequestResponse) => String(res.headers.vary ?? '').split(/\s*,\s*/).map((v) => v.toLowerCase());

    it('a listed origin gets itself back, Vary: Origin and the exposed headers, never credentials', async () => {
      for (const origin of [ORIGIN, 'http://localhost:5173']) {
        const res = await as(c.app, bob.accessToken)({ method: 'GET', url: '/v1/users/me', headers: { origin } });
        expect(res.statusCode).toBe(200);
        expect(res.headers['access-control-allow-origin']).toBe(origin);
        expect(res.headers['access-control-expose-headers']).toBe('ETag, Idempotent-Replayed, Location, RateLimit, RateLimit-Policy, Retry-After, X-Request-Id');
        expect(res.headers['access-control-allow-credentials']).toBeUndefined();
        expect(vary(res)).toContain('origin');
      }
    });

    it('cached answers vary on both Authorization and Origin', async () => {
      const get = () => as(c.app, bob.accessToken)({ method: 'GET', url: '/v1/tasks', headers: { origin: ORIGIN } });
      const [miss, hit] = [await get(), await get()];
      expect([miss.headers['x-cache'], hit.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      for (const res of [miss, hit]) {
        expect(vary(res)).toEqual(expect.arrayContaining(['origin', 'authorization']));
        expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
      }
    });

    it('errors carry the CORS headers too, so the browser can read the problem', async () => {
      const res = await c.app.inject({ method: 'GET', url: '/v1/tasks', headers: { origin: ORIGIN }, remoteAddress: '198.51.100.1' });
      expectProblem(res, 401);
      expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    });

    it('an origin not listed, or none, gets no CORS header at all (still Vary: Origin)', async () => {
      for (const headers of [{ origin: 'https://evil.example' }, { origin: 'https://app.example.com.evil.example' }, { origin: 'null' }, {}]) {
        const res = await as(c.app, bob.accessToken)({ method: 'GET', url: '/v1/users/me', headers });
        expect(res.statusCode).toBe(200);
        expect(corsHeaders(res)).toEqual([]);
        expect(vary(res)).toContain('origin');
      }
      const preflight = await c.app.inject({ method: 'OPTIONS', url: '/v1/tasks', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      expect(preflight.statusCode).toBe(204);
      expect(corsHeaders(preflight)).toEqual([]);
    });

    it('a preflight is a 204 with the methods of the path and the headers the API reads, without a token', async () => {
      const res = await c.app.inject({
        method: 'OPTIONS',
        url: `/v1/tasks/${task.id}`,
        headers: { origin: ORIGIN, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization, content-type, if-match' },
      });
      expect(res.statusCode).toBe(204);
      expect(res.body).toBe('');
      expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
      expect(res.headers['access-control-allow-methods']).toBe('DELETE, GET, HEAD, PATCH');
      expect(res.headers['access-control-allow-headers']).toBe('Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, X-Request-Id');
      expect(res.headers['access-control-max-age']).toBe('600');
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
      expect(res.headers.allow).toBe('DELETE, GET, HEAD, OPTIONS, PATCH');
      expect(vary(res)).toContain('origin');
    });

    it('preflights and 405s use none of the rate-limit quota', async () => {
      const remoteAddress = '203.0.113.7';
      for (let i = 0; i < 5; i++) {
        const preflight = await c.app.inject({ method: 'OPTIONS', url: '/v1/tasks', remoteAddress, headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
        expect(preflight.statusCode).toBe(204);
        expect(preflight.headers.ratelimit).toBeUndefined();
        expect((await c.app.inject({ method: 'PUT', url: '/v1/tasks', remoteAddress })).statusCode).toBe(405);
      }
      // The first counted request of this address: 1000 points, 999 left.
      const counted = await c.app.inject({ method: 'GET', url: '/v1/tasks', remoteAddress });
      expect(counted.statusCode).toBe(401);
      expect(counted.headers.ratelimit).toMatch(/^"default";r=999;t=\d+$/);
    });
  });
});
