// The JWKS cache of processes without the auth module: max-age, the unknown-kid cooldown, and
// what happens while the auth service cannot be reached. The clock and fetch are the test's.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, SignJWT, type JWK } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import { maxAgeOf, RemoteAccessTokens } from '../../src/http/remote-jwks.js';

interface Key {
  kid: string;
  privateKey: KeyObject;
  jwk: JWK;
}

async function newKey(): Promise<Key> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, privateKey, jwk: { ...jwk, kid, alg: 'EdDSA', use: 'sig' } };
}

const sign = (k: Key, nowMs: number, sub = '0192f7a0-0000-7000-8000-000000000001') =>
  new SignJWT({ role: 'user' })
    .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'at+jwt' })
    .setIssuer('task-api')
    .setAudience('task-api')
    .setSubject(sub)
    .setIssuedAt(Math.floor(nowMs / 1000))
    .setExpirationTime(Math.floor(nowMs / 1000) + 900)
    .sign(k.privateKey);

/** A fake auth service: the keys it publishes, whether it answers, and how often it was asked. */
function authService(keys: Key[], cacheControl: string | null = 'public, max-age=300') {
  const svc = {
    keys,
    up: true,
    cacheControl,
    calls: 0,
    fetch: async () => {
      svc.calls++;
      if (!svc.up) throw new TypeError('fetch failed: ECONNREFUSED');
      return {
        status: 200,
        headers: new Headers(svc.cacheControl ? { 'cache-control': svc.cacheControl } : {}),
        json: async () => ({ keys: svc.keys.map((k) => k.jwk) }),
      };
    },
  };
  return svc;
}

function verifier(svc: ReturnType<typeof authService>, clock: { ms: number }, cooldownMs = 30_000) {
  return new RemoteAccessTokens({ url: 'http://auth.test/.well-known/jwks.json', cooldownMs, fetch: svc.fetch, now: () => clock.ms, issuer: 'task-api', audience: 'task-api' });
}

describe('remote JWKS', () => {
  it('reads max-age from Cache-Control, bounded, with a default', () => {
    expect(maxAgeOf('public, max-age=120')).toBe(120);
    expect(maxAgeOf('max-age=0')).toBe(10);
    expect(maxAgeOf('no-store')).toBe(10);
    expect(maxAgeOf('max-age=999999')).toBe(3600);
    expect(maxAgeOf(null)).toBe(300);
    expect(maxAgeOf('public')).toBe(300);
  });

  it('fetches once, then verifies from the cache until max-age; a stale cache is renewed behind a request', async () => {
    const k = await newKey();
    const svc = authService([k], 'max-age=60');
    const clock = { ms: Date.now() };
    const v = verifier(svc, clock);
    const token = await sign(k, clock.ms);
    expect((await v.verify(token)).userId).toBeDefined();
    expect(await v.verify(await sign(k, clock.ms, '0192f7a0-0000-7000-8000-000000000002'))).toMatchObject({ role: 'user' });
    expect(svc.calls).toBe(1);
    expect(v.jwks.state().freshUntilMs).toBe(clock.ms + 60_000);
    clock.ms += 59_000;
    await v.verify(await sign(k, clock.ms, '0192f7a0-0000-7000-8000-000000000003'));
    expect(svc.calls).toBe(1);
    clock.ms += 2_000; // past max-age: the request is served from the cache, the refresh runs behind it
    await v.verify(await sign(k, clock.ms, '0192f7a0-0000-7000-8000-000000000004'));
    await vi.waitFor(() => expect(svc.calls).toBe(2));
    expect(v.jwks.state().freshUntilMs).toBe(clock.ms + 60_000);
  });

  it('an unknown kid fetches at once, at most once per cooldown, however many arrive', async () => {
    const [a, b] = [await newKey(), await newKey()];
    const svc = authService([a]);
    const clock = { ms: Date.now() };
    const v = verifier(svc, clock);
    await v.verify(await sign(a, clock.ms));
    expect(svc.calls).toBe(1);
    clock.ms += 31_000;
    // A key published since: one fetch, then it verifies.
    svc.keys = [a, b];
    await v.verify(await sign(b, clock.ms));
    expect(svc.calls).toBe(2);
    // A flood of made-up kids within the cooldown: 401 each, no fetch.
    const forged = await newKey();
    const bad = await sign(forged, clock.ms);
    const answers = await Promise.allSettled(Array.from({ length: 50 }, () => v.verify(bad)));
    expect(answers.every((r) => r.status === 'rejected' && (r.reason as { status: number }).status === 401)).toBe(true);
    expect(svc.calls).toBe(2);
    // After the cooldown, one more fetch for the next unknown kid (still unknown: 401).
    clock.ms += 30_000;
    await expect(v.verify(await sign(forged, clock.ms, '0192f7a0-0000-7000-8000-000000000009'))).rejects.toMatchObject({ status: 401 });
    expect(svc.calls).toBe(3);
  });

  it('concurrent unknown kids share one fetch', async () => {
    const [a, b] = [await newKey(), await newKey()];
    const svc = authService([a, b]);
    const clock = { ms: Date.now() };
    const v = verifier(svc, clock);
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => sign(i % 2 ? a : b, clock.ms, `0192f7a0-0000-7000-8000-0000000000${String(10 + i)}`)));
    await Promise.all(tokens.map((t) => v.verify(t)));
    expect(svc.calls).toBe(1);
  });

  it('auth down: known kids keep verifying from the cache; an unknown kid is 503 with Retry-After', async () => {
    const [a, b] = [await newKey(), await newKey()];
    const svc = authService([a], 'max-age=60');
    const clock = { ms: Date.now() };
    const v = verifier(svc, clock);
    await v.verify(await sign(a, clock.ms));
    svc.up = false;
    clock.ms += 3_600_000; // long past max-age
    await v.jwks.refresh();
    expect(v.jwks.state()).toMatchObject({ lastFailed: true, kids: [a.kid] });
    expect(await v.verify(await sign(a, clock.ms))).toMatchObject({ role: 'user' });
    const unknown = v.verify(await sign(b, clock.ms));
    await expect(unknown).rejects.toMatchObject({ status: 503, code: 'service-unavailable' });
    const err = (await unknown.catch((e: unknown) => e)) as { headers?: Record<string, string> };
    expect(Number(err.headers?.['retry-after'])).toBeGreaterThanOrEqual(1);
    // Auth back: the next unknown kid after the cooldown fetches, and the key verifies.
    svc.up = true;
    svc.keys = [a, b];
    clock.ms += 30_000;
    expect(await v.verify(await sign(b, clock.ms))).toMatchObject({ role: 'user' });
  });

  it('an answer with no usable key keeps the keys held', async () => {
    const a = await newKey();
    const svc = authService([a]);
    const clock = { ms: Date.now() };
    const v = verifier(svc, clock);
    await v.verify(await sign(a, clock.ms));
    svc.keys = [];
    await v.jwks.refresh();
    expect(v.jwks.state()).toMatchObject({ lastFailed: true, kids: [a.kid] });
    expect(await v.verify(await sign(a, clock.ms, '0192f7a0-0000-7000-8000-000000000005'))).toMatchObject({ role: 'user' });
  });
});

describe('a process without the auth module', () => {
  it('stops at start with a configuration error naming AUTH_JWKS_URL when it has no way to check tokens', async () => {
    const { loadConfig, ConfigError } = await import('../../src/config.js');
    const { serve } = await import('../../src/server.js');
    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: ':memory:' });
    const started = serve(config, { modules: new Set(['tasks'] as const) });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toThrow(/AUTH_JWKS_URL: required when the auth module is not in this process/);
    expect(() => loadConfig({ AUTH_JWKS_URL: 'ftp://auth/jwks' })).toThrow(/AUTH_JWKS_URL/);
  });
});
