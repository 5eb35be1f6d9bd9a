// A Redis that dies: this test starts its own redis-server on a free port and stops it, never
// the machine's shared one. The token store must fail closed (503 + Retry-After), access tokens
// and task reads keep working, readiness stays up (Redis is not critical), and service
// resumes by itself when Redis returns.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openInfrastructure, type Infrastructure } from '../../src/infrastructure.js';
import { as, register, testPrivateKey, uniqueEmail, type SessionBody } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';

let redis: OwnRedis;
let db: TestDatabase;
let infra: Infrastructure;
let app: FastifyInstance;

beforeAll(async () => {
  redis = await ownRedis();
  await redis.start();
  db = await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: `test:${randomBytes(4).toString('hex')}:`,
    JWT_PRIVATE_KEY: testPrivateKey(),
  });
  infra = await openInfrastructure(config, pino({ level: 'silent' }));
  app = await buildApp({ config, ...infra });
  await app.ready();
});

afterAll(async () => {
  await app.close();
  await infra.close();
  await redis.kill();
  await db.drop();
});

describe('when Redis fails', () => {
  it('token operations fail closed with 503 and Retry-After; reads keep working; recovery is automatic', async () => {
    const email = uniqueEmail('redis-down');
    const s = await register(app, email, 'redis down password');
    const task = await as(app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'before the outage' } });
    expect(task.statusCode).toBe(201);

    await redis.kill();

    const refresh = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: s.refreshToken } });
    expect(refresh.statusCode).toBe(503);
    expect(refresh.headers['retry-after']).toBe('5');
    expect(refresh.headers['content-type']).toContain('application/problem+json');
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'redis down password' } });
    expect(login.statusCode).toBe(503);
    const logout = await app.inject({ method: 'POST', url: '/v1/auth/logout', payload: { refreshToken: s.refreshToken } });
    expect(logout.statusCode).toBe(503);
    // A registration refused for want of a session store leaves no account behind.
    const lateEmail = uniqueEmail('late');
    const late = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email: lateEmail, password: 'late password' } });
    expect(late.statusCode).toBe(503);

    // Access tokens need no store: the API keeps serving.
    const list = await as(app, s.accessToken)({ method: 'GET', url: '/v1/tasks' });
    expect(list.statusCode).toBe(200);
    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({ status: 'degraded', checks: { redis: { status: 'down', critical: false }, database: { status: 'up' } } });

    await redis.start();
    // The machine's Redis kept nothing on disk, so the old token is gone: an honest 401, not a 503.
    let after = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: s.refreshToken } });
    for (let i = 0; i < 50 && after.statusCode === 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: s.refreshToken } });
    }
    expect(after.statusCode).toBe(401);
    const relog = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'redis down password' } });
    expect(relog.statusCode).toBe(200);
    const next = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: relog.json<SessionBody>().refreshToken } });
    expect(next.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/health' })).json()).toMatchObject({ status: 'ok' });
    const retried = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email: lateEmail, password: 'late password' } });
    expect(retried.statusCode).toBe(201);
  });
});
