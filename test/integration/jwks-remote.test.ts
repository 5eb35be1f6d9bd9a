// Two services from the same code: one runs the auth module and serves its JWKS on a real port;
// the other runs tasks and users only (`serve --modules tasks,users`) and checks access tokens
// against that JWKS (AUTH_JWKS_URL). A key rotation in the middle of the run fails no request;
// with the auth service gone, the tasks service keeps accepting tokens whose keys it holds.
import { createPrivateKey } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModuleName } from '../../src/modules/registry.js';
import { keysCommand, listKeys, rotateKeys } from '../../src/operations/keys.js';
import { as, createTestApp, register, testPrivateKey, type TestApp } from '../helpers/app.js';

let auth: TestApp;
let tasks: TestApp;
let jwksUrl: string;

beforeAll(async () => {
  auth = await createTestApp();
  const address = await auth.app.listen({ host: '127.0.0.1', port: 0 });
  jwksUrl = `${address}/.well-known/jwks.json`;
  tasks = await createTestApp({
    sharing: auth,
    modules: new Set<ModuleName>(['tasks', 'users']),
    // No cooldown here, so that the new key's first token fetches at once whatever the timing;
    // the cooldown itself is covered by test/unit/remote-jwks.test.ts.
    env: { AUTH_JWKS_URL: jwksUrl, AUTH_JWKS_COOLDOWN_MS: '0' },
  });
});

afterAll(async () => {
  await tasks?.close();
  await auth?.close();
});

const kidOf = (token: string) => decodeProtectedHeader(token).kid!;
const listTasks = (token: string) => as(tasks.app, token)({ method: 'GET', url: '/v1/tasks' });

/** A token signed the way the auth service signs, with the given key and kid. */
const forge = (sub: string, pem: string, kid: string) =>
  new SignJWT({ role: 'user' })
    .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'at+jwt' })
    .setIssuer('task-api')
    .setAudience('task-api')
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('15m')
    .sign(createPrivateKey(pem));

describe('access tokens checked against the auth service JWKS', () => {
  it('the JWKS answer carries Cache-Control max-age', async () => {
    const res = await fetch(jwksUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toMatch(/max-age=\d+/);
  });

  it('the tasks service serves no auth route and accepts the auth service tokens', async () => {
    const s = await register(auth.app);
    expect((await tasks.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).statusCode).toBe(404);
    const created = await as(tasks.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title: 'from the split service' } });
    expect(created.statusCode).toBe(201);
    expect((await listTasks(s.accessToken)).json<{ data: unknown[] }>().data).toHaveLength(1);
    expect((await listTasks('not.a.token')).statusCode).toBe(401);
  });

  it('a rotation mid-run: old tokens keep verifying, new ones verify once the JWKS is fetched again, no request fails; then auth goes away', async () => {
    const before = await register(auth.app);
    const oldKid = kidOf(before.accessToken);
    expect((await listTasks(before.accessToken)).statusCode).toBe(200);

    // Requests keep flowing while the key is rotated (published and signing at once here).
    let rotating = true;
    const statuses: number[] = [];
    const traffic = (async () => {
      while (rotating) statuses.push((await listTasks(before.accessToken)).statusCode);
    })();
    let rotated: Awaited<ReturnType<typeof rotateKeys>>;
    let after: Awaited<ReturnType<typeof register>>;
    try {
      rotated = await rotateKeys(auth.database, auth.config, { publishAheadSeconds: 0 });
      expect(rotated.seeded).toEqual([oldKid]);
      await (auth.keys as unknown as { reload(): Promise<void> }).reload(); // what its timer does every JWT_KEY_RELOAD_SECONDS
      after = await register(auth.app);
      expect(kidOf(after.accessToken)).toBe(rotated.kid);
      const fetchesBefore = tasks.app.remoteJwks!.state().fetches;
      expect((await listTasks(after.accessToken)).statusCode).toBe(200); // unknown kid: JWKS fetched again
      expect(tasks.app.remoteJwks!.state().fetches).toBeGreaterThan(fetchesBefore);
      expect((await listTasks(before.accessToken)).statusCode).toBe(200); // the old key is still published
    } finally {
      rotating = false;
      await traffic;
    }
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(new Set(tasks.app.remoteJwks!.state().kids)).toEqual(new Set([oldKid, rotated.kid]));

    const listed = await listKeys(auth.database);
    expect(listed.map((k) => [k.kid, k.state])).toEqual([
      [oldKid, 'verifying'],
      [rotated.kid, 'signing'],
    ]);
    expect((await keysCommand('list', auth.database, auth.config)).at(-1)).toBe('keys: 2');

    // Tokens the tasks service has not seen yet, one per key, then the auth service goes away.
    const third = await register(auth.app);
    const oldSigned = await forge(third.user.id, auth.config.jwt.privateKeyPem!, oldKid);
    await auth.app.close();
    await tasks.app.remoteJwks!.refresh();
    expect(tasks.app.remoteJwks!.state().lastFailed).toBe(true);
    expect((await listTasks(third.accessToken)).statusCode).toBe(200);
    expect((await listTasks(oldSigned)).statusCode).toBe(200);
    // A kid it has never seen cannot be checked while auth is down: 503 with Retry-After, not 401.
    const unknown = await listTasks(await forge(third.user.id, testPrivateKey(), 'a-kid-published-while-auth-was-down'));
    expect(unknown.statusCode).toBe(503);
    expect(unknown.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(Number(unknown.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(decodeJwt(third.accessToken).sub).toBe(third.user.id);
  });
});

describe('key rotation on the embedded database (PGlite, one process)', () => {
  it('keys rotate works the same: the new key signs at its sign_from, old tokens keep verifying', async () => {
    const t = await createTestApp({ embedded: true });
    try {
      const before = await register(t.app);
      const rotated = await rotateKeys(t.database, t.config, { publishAheadSeconds: 0 });
      await (t.keys as unknown as { reload(): Promise<void> }).reload();
      const after = await register(t.app);
      expect(kidOf(after.accessToken)).toBe(rotated.kid);
      expect(kidOf(before.accessToken)).toBe(rotated.seeded[0]);
      for (const token of [before.accessToken, after.accessToken]) {
        expect((await as(t.app, token)({ method: 'GET', url: '/v1/users/me' })).statusCode).toBe(200);
      }
      const jwks = (await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json<{ keys: { kid: string }[] }>();
      expect(new Set(jwks.keys.map((k) => k.kid))).toEqual(new Set([rotated.kid, rotated.seeded[0]]));
    } finally {
      await t.close();
    }
  });
});
