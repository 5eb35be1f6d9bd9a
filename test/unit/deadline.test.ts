// The answer deadline (src/http/deadline.ts) on a bare Fastify with the problem handler: a handler
// that never answers gets 503 problem+json with Retry-After once the deadline passes; one that
// answers in time is untouched; 0 turns the deadline off.
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { deadlinePlugin } from '../../src/http/deadline.js';
import { problemPlugin } from '../../src/http/problem.js';

const apps: FastifyInstance[] = [];
const releases: (() => void)[] = [];
afterEach(async () => {
  for (const release of releases.splice(0)) release();
  for (const app of apps.splice(0)) await app.close();
});

async function appWith(ms: number): Promise<{ app: FastifyInstance; late: string[] }> {
  const app = Fastify({ logger: false });
  apps.push(app);
  const late: string[] = [];
  await app.register(problemPlugin);
  await app.register(deadlinePlugin, { ms });
  // Waits until the test ends, as a query to a paused database would: then answers, too late.
  app.get('/stuck', async () => {
    await new Promise<void>((resolve) => releases.push(resolve));
    late.push('answered');
    return { late: true };
  });
  app.get('/quick', async () => ({ ok: true }));
  app.post('/stuck', async () => {
    await new Promise<void>((resolve) => releases.push(resolve));
    return { late: true };
  });
  await app.ready();
  return { app, late };
}

describe('answer deadline', () => {
  it('answers 503 problem+json with Retry-After when the handler has not answered by the deadline', async () => {
    const { app } = await appWith(50);
    const res = await app.inject({ method: 'GET', url: '/stuck' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toMatchObject({ type: 'urn:task-api:problem:service-unavailable', status: 503 });
    expect(res.json<{ detail: string }>().detail).toMatch(/No answer within 50 ms/);
  });

  it('leaves an answer given in time alone, and the late answer of a timed-out handler goes nowhere', async () => {
    const { app, late } = await appWith(50);
    expect((await app.inject({ method: 'GET', url: '/quick' })).json()).toEqual({ ok: true });
    const res = await app.inject({ method: 'GET', url: '/stuck' });
    expect(res.statusCode).toBe(503);
    for (const release of releases.splice(0)) release();
    await new Promise((r) => setImmediate(r));
    expect(late).toEqual(['answered']);
  });

  it('counts from the end of the body for a request with one', async () => {
    const { app } = await appWith(50);
    const res = await app.inject({ method: 'POST', url: '/stuck', payload: { title: 'x' } });
    expect(res.statusCode).toBe(503);
    expect(res.json<{ detail: string }>().detail).toMatch(/No answer within 50 ms/);
  });

  it('0: no deadline (the handler answers whenever it does)', async () => {
    const { app } = await appWith(0);
    const pending = app.inject({ method: 'GET', url: '/stuck' });
    await new Promise((r) => setTimeout(r, 100));
    for (const release of releases.splice(0)) release();
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ late: true });
  });
});
