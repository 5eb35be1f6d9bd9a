// package.json `overrides` pin two transitive packages to their Node 20 lines (docs/decisions.md,
// "Engines"): cookie 1.x under light-my-request (app.inject's `cookies` option) and
// content-disposition 2.x under @fastify/static (/docs files, reply.download). These check that
// what the dependents call still works with them.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';

/** The package.json of `pkg` as `from` resolves it (neither exports its package.json). */
function manifestOf(pkg: string, from: string): { version: string; engines?: { node?: string } } {
  const dependent = createRequire(import.meta.url).resolve(from);
  let dir = path.dirname(createRequire(dependent).resolve(pkg));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version: string };
      if (manifest.name === pkg) return manifest;
    } catch {
      // no package.json at this level
    }
    if (path.dirname(dir) === dir) throw new Error(`no package.json for ${pkg}`);
    dir = path.dirname(dir);
  }
}

describe('the overridden packages', () => {
  it('are the Node 20 lines, as light-my-request and @fastify/static load them', () => {
    expect(manifestOf('cookie', 'light-my-request')).toMatchObject({ version: expect.stringMatching(/^1\./), engines: { node: '>=18' } });
    expect(manifestOf('content-disposition', '@fastify/static')).toMatchObject({ version: expect.stringMatching(/^2\./), engines: { node: '>=18' } });
  });

  it("app.inject's cookies option sends a Cookie header (light-my-request over cookie 1.x)", async () => {
    const app = Fastify();
    app.get('/echo', async (request) => ({ cookie: request.headers.cookie ?? null }));
    const res = await app.inject({ method: 'GET', url: '/echo', cookies: { sid: 'abc123', note: 'a b/c', empty: '' } });
    const sent = res.json<{ cookie: string }>().cookie;
    const pairs = Object.fromEntries(sent.split('; ').map((p) => p.split('=').map(decodeURIComponent) as [string, string]));
    expect(pairs).toEqual({ sid: 'abc123', note: 'a b/c', empty: '' });
    await app.close();
  });

  it('@fastify/static sends a file, and reply.download names it in Content-Disposition (content-disposition 2.x)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'overrides-'));
    try {
      await writeFile(path.join(dir, 'report ü.txt'), 'hello');
      const app = Fastify();
      await app.register(fastifyStatic, { root: dir, prefix: '/files/' });
      app.get('/download', (_request, reply) => reply.download('report ü.txt'));
      const file = await app.inject({ method: 'GET', url: `/files/${encodeURIComponent('report ü.txt')}` });
      expect(file.statusCode).toBe(200);
      expect(file.body).toBe('hello');
      const download = await app.inject({ method: 'GET', url: '/download' });
      expect(download.statusCode).toBe(200);
      expect(download.headers['content-disposition']).toBe(`attachment; filename="report ?.txt"; filename*=UTF-8''report%20%C3%BC.txt`);
      await app.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
