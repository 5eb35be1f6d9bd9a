// Logs as an operator reads them: one JSON line per request with the route template, base
// fields, request ids, errors with stacks only in the log, no secret ever written, and shipping
// to a Logstash-style TCP JSON-lines input.
import { createServer, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openInfrastructure, type Infrastructure } from '../../src/infrastructure.js';
import { loggerOptions } from '../../src/observability/logging.js';
import { testPrivateKey, uniqueEmail, type SessionBody } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { REDIS_URL } from '../setup/services.js';
import { freePort } from '../helpers/process.js';

type Line = Record<string, unknown>;
let db: TestDatabase;
let infra: Infrastructure;
let app: FastifyInstance;
const lines: Line[] = [];
let raw = '';

const env = () => ({
  NODE_ENV: 'production',
  LOG_LEVEL: 'info',
  DATABASE_URL: db.url,
  REDIS_URL,
  REDIS_KEY_PREFIX: `test:log:${process.pid}:`,
  JWT_PRIVATE_KEY: testPrivateKey(),
  RATE_LIMIT_ENABLED: 'false',
});

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig(env());
  infra = await openInfrastructure(config, pino({ level: 'silent' }));
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      raw += chunk.toString();
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  app = await buildApp({ config, ...infra, logger: { ...loggerOptions(config), stream } });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await infra.close();
  await db.drop();
});

const requestLines = () => lines.filter((l) => l.msg === 'request' || l.msg === 'request failed');

describe('request logs', () => {
  it('one line per request with method, route template, status, duration, request id and base fields', async () => {
    const before = requestLines().length;
    const reg = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email: uniqueEmail('log'), password: 'log password 1' } });
    const token = reg.json<SessionBody>().accessToken;
    const created = await app.inject({ method: 'POST', url: '/v1/tasks', headers: { authorization: `Bearer ${token}` }, payload: { title: 't' } });
    const id = created.json<{ id: string }>().id;
    const got = await app.inject({ method: 'GET', url: `/v1/tasks/${id}`, headers: { authorization: `Bearer ${token}`, 'x-request-id': 'edge-123.abc' } });
    expect(got.headers['x-request-id']).toBe('edge-123.abc');
    const mine = requestLines().slice(before);
    expect(mine).toHaveLength(3);
    const last = mine[2]!;
    expect(last).toMatchObject({ level: 30, method: 'GET', route: '/v1/tasks/:id', statusCode: 200, reqId: 'edge-123.abc', service: 'task-api', environment: 'production' });
    expect(typeof last.durationMs).toBe('number');
    expect(typeof last.hostname).toBe('string');
    expect(typeof last.version).toBe('string');
    expect(JSON.stringify(mine)).not.toContain(id); // the template, never the raw URL
  });

  it('replaces an implausible X-Request-Id rather than logging it', async () => {
    const res = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'x'.repeat(300) } });
    expect(res.headers['x-request-id']).not.toBe('x'.repeat(300));
    const line = requestLines().at(-1)!;
    expect(line.reqId).toBe(res.headers['x-request-id']);
  });

  it('never writes passwords, tokens or refresh tokens', async () => {
    const email = uniqueEmail('secret');
    const password = 'very secret password';
    const reg = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password } });
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } });
    const session = login.json<SessionBody>();
    const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: session.refreshToken } });
    await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: session.refreshToken } }); // reuse: logged as a warning
    await app.inject({
      method: 'PATCH',
      url: '/v1/users/me',
      headers: { authorization: `Bearer ${session.accessToken}`, cookie: 'sid=cookie-secret' },
      payload: { password: 'another secret pw', currentPassword: password },
    });
    const secrets = [password, 'another secret pw', 'cookie-secret', reg.json<SessionBody>().refreshToken, session.refreshToken, session.accessToken, refreshed.json<SessionBody>().refreshToken];
    for (const s of secrets) expect(raw).not.toContain(s);
    expect(lines.some((l) => String(l.msg).includes('reuse'))).toBe(true);
  });

  it('logs a 5xx at error level with the stack, and the answer carries neither', async () => {
    // A dedicated app whose database is gone.
    const config = loadConfig(env());
    const broken = await openInfrastructure(config, pino({ level: 'silent' }));
    const captured: Line[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) captured.push(JSON.parse(l) as Line);
        done();
      },
    });
    const b = await buildApp({ config, ...broken, logger: { ...loggerOptions(config), stream } });
    await b.ready();
    const reg = await b.inject({ method: 'POST', url: '/v1/auth/register', payload: { email: uniqueEmail('broken'), password: 'broken password' } });
    const token = reg.json<SessionBody>().accessToken;
    await broken.database.close();
    const res = await b.inject({ method: 'GET', url: '/v1/tasks', headers: { authorization: `Bearer ${token}` } });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toMatch(/\bat\s|stack|postgres/i);
    const line = captured.find((l) => l.msg === 'request failed')!;
    expect(line).toMatchObject({ level: 50, route: '/v1/tasks', statusCode: 500 });
    expect(String((line.err as { stack?: string }).stack)).toContain('\n    at ');
    await b.close();
    await broken.redis?.quit();
  });
});

describe('log shipping', () => {
  it('sends the same JSON lines to a Logstash tcp input when LOGSTASH_URL is set', async () => {
    const received: string[] = [];
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.on('data', (d: Buffer) => received.push(d.toString()));
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const config = loadConfig({ ...env(), LOGSTASH_URL: `tcp://127.0.0.1:${port}` });
    const shipped = await buildApp({ config, ...infra });
    try {
      await shipped.ready();
      await shipped.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'shipped-1' } });
      for (let i = 0; i < 100 && !received.join('').includes('shipped-1'); i++) await new Promise((r) => setTimeout(r, 50));
      const line = received.join('').split('\n').find((l) => l.includes('shipped-1'))!;
      expect(JSON.parse(line)).toMatchObject({ msg: 'request', route: '/health/live', service: 'task-api', reqId: 'shipped-1' });
    } finally {
      await shipped.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
