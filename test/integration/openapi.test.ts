import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument, serialiseDocument } from '../../src/operations/openapi.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

type Doc = { paths: Record<string, Record<string, unknown>> };
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ embedded: true });
});
afterAll(() => t.close());

describe('OpenAPI document', () => {
  it('docs/openapi.json is what the routes generate (run `npm run openapi` after changing a route)', async () => {
    const committed = await readFile(new URL('../../docs/openapi.json', import.meta.url), 'utf8');
    expect(committed).toBe(serialiseDocument(await openApiDocument()));
  });

  it('every documented operation exists on the server', async () => {
    const doc = JSON.parse(await readFile(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as Doc;
    const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      METHODS.filter((m) => m in ops).map((m) => ({ method: m.toUpperCase(), url: path.replace(/\{(\w+)\}/g, ':$1') })),
    );
    expect(operations.length).toBeGreaterThan(15);
    for (const op of operations) expect(t.app.hasRoute(op as never), `${op.method} ${op.url}`).toBe(true);
  });

  it('every API route of the server is documented', async () => {
    const doc = JSON.parse(await readFile(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as Doc;
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) => METHODS.filter((m) => m in ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`)),
    );
    // printRoutes lists the radix tree; rebuild full paths with their methods from it.
    const routes = routeList(t.app.printRoutes({ commonPrefix: false, includeHooks: false }));
    const api = routes.filter((r) => r.includes(' /v1/') || r.includes(' /health') || r.includes(' /.well-known/'));
    expect(api.length).toBeGreaterThan(15);
    for (const r of api) expect(documented.has(r), r).toBe(true);
  });

  it('serves the document at /openapi.json and a docs page at /docs', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.json<{ openapi: string }>().openapi).toBe('3.1.0');
    const docs = await t.app.inject({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toContain('text/html');
  });
});

/** Turns printRoutes' tree ("├── /v1/tasks (GET, HEAD, POST)") into "METHOD path" lines. */
function routeList(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)(?:[├└]── )?(\S.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m || !m[2]) continue;
    const depth = Math.floor(m[1]!.length / 4) + (line.match(/[├└]── /) ? 1 : 0);
    stack.length = depth;
    stack[depth] = m[2];
    const path = stack.join('');
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) out.push(`${method} ${path}`);
  }
  return out;
}
