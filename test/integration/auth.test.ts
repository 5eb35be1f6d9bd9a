import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { hash as argon2Hash } from '@node-rs/argon2';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { decodeJwt, decodeProtectedHeader, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegisterInput } from '../../src/modules/auth/schemas.js';
import { hashRefreshToken } from '../../src/modules/auth/tokens.js';
import type { UpdateMeInput } from '../../src/modules/users/schemas.js';
import { UsersRepository } from '../../src/modules/users/repository.js';
import { uuidv7 } from '../../src/shared/ids.js';
import { createTestApp, testPrivateKey, uniqueEmail, type SessionBody, type TestApp } from '../helpers/app.js';
import type { LoginInput, ProblemBody, RefreshInput, UserBody } from '../helpers/bodies.js';

const PASSWORD = 'correct horse battery';
const CURRENT_HASH_PREFIX = '$argon2id$v=19$m=19456,t=2,p=1$';

let t: TestApp;
const extraApps: TestApp[] = [];

beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  for (const a of extraApps) await a.close();
  await t.close();
});

/** No response may ever carry a password hash, nor a property that would hold one. */
function assertNoSecrets(res: LightMyRequestResponse): void {
  expect(res.body).not.toMatch(/\$argon2/);
  expect(res.body).not.toMatch(/"password_?hash"\s*:/i);
}

/** app.inject through the leak check; `token` adds a Bearer header. */
async function call(opts: InjectOptions, token?: string, app = t.app): Promise<LightMyRequestResponse> {
  const headers = token === undefined ? opts.headers : { authorization: `Bearer ${token}`, ...opts.headers };
  const res = await app.inject({ ...opts, ...(headers ? { headers } : {}) });
  assertNoSecrets(res);
  return res;
}

const registerRaw = (body: RegisterInput | Record<string, unknown>) => call({ method: 'POST', url: '/v1/auth/register', payload: body });
const login = (body: LoginInput, app = t.app) => call({ method: 'POST', url: '/v1/auth/login', payload: body }, undefined, app);
const refresh = (refreshToken: string, app = t.app) =>
  call({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } satisfies RefreshInput }, undefined, app);
const logout = (refreshToken: string) => call({ method: 'POST', url: '/v1/auth/logout', payload: { refreshToken } satisfies RefreshInput });
const me = (token: string | undefined, app = t.app) => call({ method: 'GET', url: '/v1/users/me' }, token, app);
/** GET /v1/users/me with a raw Authorization header value. */
const meWithHeader = (authorization: string) => call({ method: 'GET', url: '/v1/users/me', headers: { authorization } });

async function registerUser(email = uniqueEmail(), password = PASSWORD): Promise<SessionBody> {
  const res = await registerRaw({ email, password } satisfies RegisterInput);
  expect(res.statusCode, res.body).toBe(201);
  return res.json<SessionBody>();
}

async function loginOk(email: string, password = PASSWORD): Promise<SessionBody> {
  const res = await login({ email, password });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<SessionBody>();
}

async function passwordHashOf(userId: string): Promise<string> {
  const [row] = await t.database.raw.query<{ password_hash: string }>('select password_hash from users where id = $1', [userId]);
  return row!.password_hash;
}

function expectSession(res: LightMyRequestResponse, status: number): SessionBody {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toContain('application/json');
  expect(res.headers['cache-control']).toBe('no-store');
  const body = res.json<SessionBody & { tokenType: string; expiresIn: number }>();
  expect(Object.keys(body).sort()).toEqual(['accessToken', 'expiresIn', 'refreshToken', 'tokenType', 'user']);
  expect(body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900 });
  expect(body.accessToken.split('.')).toHaveLength(3);
  expect(body.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(Object.keys(body.user).sort()).toEqual(['createdAt', 'email', 'id', 'name', 'role', 'updatedAt']);
  return body;
}

function expectProblem(res: LightMyRequestResponse, status: number): ProblemBody {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  const body = res.json<ProblemBody>();
  expect(body.status).toBe(status);
  return body;
}

const fieldsOf = (p: ProblemBody) => (p.errors ?? []).map((e) => e.field);

describe('register', () => {
  it('creates an account: 201 with a session, no-store, and the user as stored', async () => {
    const email = uniqueEmail('reg');
    const res = await registerRaw({ email, password: PASSWORD, name: 'Ann' } satisfies RegisterInput);
    const s = expectSession(res, 201);
    expect(s.user).toMatchObject({ email, name: 'Ann', role: 'user' });
    expect(res.headers.pragma).toBe('no-cache');
    expect(res.body).not.toContain(PASSWORD);
    expect((await me(s.accessToken)).json<UserBody>()).toEqual(s.user);
    // The session's refresh token works straight away.
    expectSession(await refresh(s.refreshToken), 200);
  });

  it('trims and lower-cases the email', async () => {
    const local = uniqueEmail('Mixed.Case');
    const res = await registerRaw({ email: `  ${local.toUpperCase()}  `, password: PASSWORD } satisfies RegisterInput);
    const s = expectSession(res, 201);
    expect(s.user.email).toBe(local.toLowerCase());
    const [row] = await t.database.raw.query<{ email: string }>('select email from users where id = $1', [s.user.id]);
    expect(row!.email).toBe(local.toLowerCase());
    // Login normalises the same way.
    expectSession(await login({ email: ` ${local.toUpperCase()} `, password: PASSWORD }), 200);
  });

  it('refuses a duplicate email, also one differing only in case and spaces: 409 problem+json', async () => {
    const email = uniqueEmail('dup');
    await registerUser(email);
    for (const variant of [email, email.toUpperCase(), `  ${email}  `, ` ${email.replace(/^d/, 'D')}\t`]) {
      const res = await registerRaw({ email: variant, password: 'another password' } satisfies RegisterInput);
      const p = expectProblem(res, 409);
      expect(p.type).toBe('urn:task-api:problem:email-taken');
    }
    const [row] = await t.database.raw.query<{ n: number }>('select count(*)::int as n from users where email = $1', [email]);
    expect(row!.n).toBe(1);
  });

  it('rejects a password shorter than 8 or longer than 128, naming the field; accepts the bounds', async () => {
    for (const password of ['', 'x', '1234567', 'p'.repeat(129), 'p'.repeat(1000)]) {
      const email = uniqueEmail('pw');
      const p = expectProblem(await registerRaw({ email, password } satisfies RegisterInput), 400);
      expect(fieldsOf(p)).toContain('password');
      expect(p.errors!.find((e) => e.field === 'password')!.in).toBe('body');
      const [row] = await t.database.raw.query<{ n: number }>('select count(*)::int as n from users where email = $1', [email]);
      expect(row!.n).toBe(0);
    }
    for (const password of ['12345678', 'p'.repeat(128)]) {
      const email = uniqueEmail('pwok');
      expectSession(await registerRaw({ email, password } satisfies RegisterInput), 201);
      expectSession(await login({ email, password }), 200);
    }
  });

  it('rejects unknown properties such as role (mass assignment) and creates no user', async () => {
    for (const extra of [{ role: 'admin' }, { role: 'user' }, { id: uuidv7() }, { passwordHash: 'x' }]) {
      const email = uniqueEmail('mass');
      const p = expectProblem(await registerRaw({ email, password: PASSWORD, ...extra }), 400);
      expect(fieldsOf(p)).toContain(Object.keys(extra)[0]);
      const [row] = await t.database.raw.query<{ n: number }>('select count(*)::int as n from users where email = $1', [email]);
      expect(row!.n).toBe(0);
      expectProblem(await login({ email, password: PASSWORD }), 401);
    }
  });

  it('rejects missing or malformed fields', async () => {
    expect(fieldsOf(expectProblem(await registerRaw({ password: PASSWORD }), 400))).toContain('email');
    expect(fieldsOf(expectProblem(await registerRaw({ email: uniqueEmail() }), 400))).toContain('password');
    expect(fieldsOf(expectProblem(await registerRaw({ email: 'not-an-email', password: PASSWORD }), 400))).toContain('email');
    expect(fieldsOf(expectProblem(await registerRaw({ email: uniqueEmail(), password: 12345678 }), 400))).toContain('password');
  });
});

describe('login', () => {
  it('answers 200 with the same session shape and no-store', async () => {
    const email = uniqueEmail('login');
    const reg = await registerUser(email);
    const res = await login({ email, password: PASSWORD });
    const s = expectSession(res, 200);
    expect(s.user).toEqual(reg.user);
    expect(s.refreshToken).not.toBe(reg.refreshToken);
    expect(res.body).not.toContain(PASSWORD);
    expect((await me(s.accessToken)).statusCode).toBe(200);
  });

  it('unknown email and wrong password give identical 401 bodies', async () => {
    const email = uniqueEmail('known');
    await registerUser(email);
    // The same request id, so that the bodies (which carry it) can be compared byte for byte.
    const headers = { 'x-request-id': 'same-request-id' };
    const wrongPassword = await call({ method: 'POST', url: '/v1/auth/login', headers, payload: { email, password: 'wrong password!' } });
    const unknownEmail = await call({ method: 'POST', url: '/v1/auth/login', headers, payload: { email: uniqueEmail('nobody'), password: PASSWORD } });
    const pw = expectProblem(wrongPassword, 401);
    const un = expectProblem(unknownEmail, 401);
    expect(pw.type).toBe('urn:task-api:problem:invalid-credentials');
    expect(un).toEqual(pw);
    expect(unknownEmail.body).toBe(wrongPassword.body);
    expect(unknownEmail.headers['www-authenticate']).toBe(wrongPassword.headers['www-authenticate']);
  });

  it('rejects unknown properties', async () => {
    const email = uniqueEmail('loginextra');
    await registerUser(email);
    const p = expectProblem(await call({ method: 'POST', url: '/v1/auth/login', payload: { email, password: PASSWORD, role: 'admin' } }), 400);
    expect(fieldsOf(p)).toContain('role');
  });
});

describe('refresh tokens', () => {
  it('rotates: a new pair, the old token spent, and reuse revokes the whole family', async () => {
    const s = await registerUser();
    const r1 = expectSession(await refresh(s.refreshToken), 200);
    expect(r1.refreshToken).not.toBe(s.refreshToken);
    expect(r1.user.id).toBe(s.user.id);
    expect((await me(r1.accessToken)).statusCode).toBe(200);

    // Second use of the spent token: 401 ...
    const reuse = expectProblem(await refresh(s.refreshToken), 401);
    expect(reuse.type).toBe('urn:task-api:problem:invalid-refresh-token');
    // ... and the family is revoked, so the token issued by the rotation is dead too.
    expectProblem(await refresh(r1.refreshToken), 401);
    expectProblem(await refresh(s.refreshToken), 401);
  });

  it('reuse in one family leaves the user\u2019s other sessions alone', async () => {
    const email = uniqueEmail('fam');
    const a = await registerUser(email);
    const b = await loginOk(email);
    expectSession(await refresh(a.refreshToken), 200);
    expectProblem(await refresh(a.refreshToken), 401);
    const b2 = expectSession(await refresh(b.refreshToken), 200);
    expectSession(await refresh(b2.refreshToken), 200);
  });

  it('a token refreshed concurrently through two app instances sharing Redis succeeds exactly once', async () => {
    const t2 = await createTestApp({ sharing: t });
    extraApps.push(t2);
    for (let round = 0; round < 3; round++) {
      const s = await registerUser();
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => refresh(s.refreshToken, i % 2 === 0 ? t.app : t2.app)));
      const codes = results.map((r) => r.statusCode).sort();
      expect(codes).toEqual([200, 401, 401, 401, 401, 401]);
    }
  });

  it('logout answers 204 and the token can no longer be refreshed', async () => {
    const s = await registerUser();
    const r1 = expectSession(await refresh(s.refreshToken), 200);
    const out = await logout(r1.refreshToken);
    expect(out.statusCode).toBe(204);
    expect(out.body).toBe('');
    expectProblem(await refresh(r1.refreshToken), 401);
    // Logging out twice, or with an unknown token, is harmless.
    expect((await logout(r1.refreshToken)).statusCode).toBe(204);
    expect((await logout('no-such-token')).statusCode).toBe(204);
  });

  it('an unknown token is 401', async () => {
    expectProblem(await refresh('no-such-token'), 401);
    expectProblem(await refresh('A'.repeat(43)), 401);
    expect((await call({ method: 'POST', url: '/v1/auth/refresh', payload: {} })).statusCode).toBe(400);
  });

  it('Redis holds only hashes of refresh tokens, never the tokens themselves', async () => {
    const email = uniqueEmail('redis');
    const reg = await registerUser(email);
    const s = await loginOk(email);
    const rotated = expectSession(await refresh(reg.refreshToken), 200);
    const raws = [reg.refreshToken, s.refreshToken, rotated.refreshToken];

    const redis = t.redis!;
    const prefix = t.config.redis.keyPrefix;
    const seen: { key: string; values: string[] }[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      for (const full of keys) {
        const key = full.slice(prefix.length); // the client adds the prefix again
        const type = await redis.type(key);
        let values: string[] = [];
        if (type === 'hash') {
          const h = await redis.hgetall(key);
          values = [...Object.keys(h), ...Object.values(h)];
        } else if (type === 'string') {
          values = [(await redis.get(key)) ?? ''];
        } else {
          throw new Error(`unexpected Redis type ${type} for ${full}`);
        }
        seen.push({ key: full, values });
      }
    } while (cursor !== '0');

    // Positive control: the tokens are there, under their SHA-256 hashes, owned by the user.
    for (const raw of raws) {
      const entry = seen.find((e) => e.key === `${prefix}rt:${hashRefreshToken(raw)}`);
      expect(entry, raw).toBeDefined();
      expect(entry!.values).toContain(s.user.id);
    }
    for (const raw of raws) {
      for (const { key, values } of seen) {
        expect(key).not.toContain(raw);
        for (const v of values) expect(v).not.toContain(raw);
      }
    }
  });
});

describe('password change', () => {
  it('revokes every refresh token of the user; the new password works and the old one does not', async () => {
    const email = uniqueEmail('pwchange');
    const reg = await registerUser(email);
    const a = await loginOk(email);
    const b = await loginOk(email);
    const other = await registerUser(); // someone else's session must survive

    const newPassword = 'a brand new password';
    const res = await call(
      { method: 'PATCH', url: '/v1/users/me', payload: { password: newPassword, currentPassword: PASSWORD } satisfies UpdateMeInput },
      a.accessToken,
    );
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).not.toContain(newPassword);

    for (const token of [reg.refreshToken, a.refreshToken, b.refreshToken]) expectProblem(await refresh(token), 401);
    expectProblem(await login({ email, password: PASSWORD }), 401);
    const fresh = await loginOk(email, newPassword);
    // Sessions started after the change are not caught by the revocation.
    const rotated = expectSession(await refresh(fresh.refreshToken), 200);
    expectSession(await refresh(rotated.refreshToken), 200);
    expectSession(await refresh(other.refreshToken), 200);
  });
});

describe('JWKS', () => {
  it('lists the kid of issued access tokens, public parts only', async () => {
    const s = await registerUser();
    const { kid, alg, typ } = decodeProtectedHeader(s.accessToken);
    expect(alg).toBe('EdDSA');
    expect(typ).toBe('at+jwt');
    const res = await call({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(res.statusCode).toBe(200);
    const { keys } = res.json<{ keys: Record<string, string>[] }>();
    const key = keys.find((k) => k.kid === kid);
    expect(key).toMatchObject({ kid, alg: 'EdDSA', kty: 'OKP', crv: 'Ed25519', use: 'sig' });
    for (const k of keys) expect(k).not.toHaveProperty('d');
  });
});

describe('access token attacks (GET /v1/users/me)', () => {
  let victim: SessionBody;
  let claims: JWTPayload;
  let kid: string;
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    victim = await registerUser();
    claims = decodeJwt(victim.accessToken);
    kid = decodeProtectedHeader(victim.accessToken).kid!;
  });

  /** Signs the victim's claims (with overrides) the way the API would, unless told otherwise. */
  function forge(opts: { key?: KeyObject | Uint8Array; alg?: string; kid?: string; typ?: string | null; claims?: JWTPayload } = {}) {
    const header: { alg: string; kid: string; typ?: string } = { alg: opts.alg ?? 'EdDSA', kid: opts.kid ?? kid };
    if (opts.typ !== null) header.typ = opts.typ ?? 'at+jwt';
    return new SignJWT({ ...claims, ...opts.claims }).setProtectedHeader(header).sign(opts.key ?? t.keys.signing.key);
  }

  const expect401 = async (token: string) => {
    const p = expectProblem(await me(token), 401);
    expect(p.type).toBe('urn:task-api:problem:invalid-token');
  };

  it('control: the issued token and a faithfully self-signed one are accepted', async () => {
    expect((await me(victim.accessToken)).statusCode).toBe(200);
    expect((await me(await forge())).statusCode).toBe(200);
  });

  it('no token, or a malformed Authorization header, is 401', async () => {
    expectProblem(await me(undefined), 401);
    for (const h of ['', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Token ${victim.accessToken}`, `Bearer ${victim.accessToken} extra`, 'Bearer a b']) {
      expectProblem(await meWithHeader(h), 401);
    }
    for (const token of ['not-a-jwt', 'a.b.c', 'a.b', `${victim.accessToken}.x`, victim.accessToken.split('.').slice(0, 2).join('.')]) {
      await expect401(token);
    }
  });

  it('alg none (an unsigned token with the same claims) is 401', async () => {
    for (const header of [{ alg: 'none', typ: 'at+jwt' }, { alg: 'none', typ: 'at+jwt', kid }, { alg: 'None', kid, typ: 'at+jwt' }]) {
      await expect401(`${b64(header)}.${b64(claims)}.`);
    }
    // The real signature kept but the header switched to none.
    await expect401(`${b64({ alg: 'none', kid, typ: 'at+jwt' })}.${b64(claims)}.${victim.accessToken.split('.')[2]}`);
  });

  it('HS256 signed with the public key as the HMAC secret is 401', async () => {
    const pub = t.keys.verification.get(kid)!.key;
    const secrets = [
      Buffer.from(pub.export({ type: 'spki', format: 'pem' })),
      new Uint8Array(pub.export({ type: 'spki', format: 'der' })),
      Buffer.from(t.keys.verification.get(kid)!.jwk.x!, 'base64url'),
      Buffer.from(JSON.stringify(t.keys.verification.get(kid)!.jwk)),
    ];
    for (const secret of secrets) await expect401(await forge({ alg: 'HS256', key: secret }));
  });

  it('an altered signature is 401', async () => {
    const [h, p, sig] = victim.accessToken.split('.') as [string, string, string];
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    await expect401(`${h}.${p}.${flip(sig, 10)}`);
    await expect401(`${h}.${p}.${flip(sig, 0)}`);
    await expect401(`${h}.${p}.${sig.slice(0, -4)}`);
    // Claims altered (role escalated) under the original signature.
    await expect401(`${h}.${b64({ ...claims, role: 'admin' })}.${sig}`);
  });

  it('expired beyond the leeway is 401; expired within the leeway is accepted', async () => {
    await expect401(await forge({ claims: { iat: now() - 1000, exp: now() - 61 } }));
    await expect401(await forge({ claims: { iat: now() - 4000, exp: now() - 3600 } }));
    expect((await me(await forge({ claims: { iat: now() - 900, exp: now() - 10 } }))).statusCode).toBe(200);
  });

  it('wrong issuer or audience is 401', async () => {
    await expect401(await forge({ claims: { iss: 'someone-else' } }));
    await expect401(await forge({ claims: { aud: 'another-api' } }));
    await expect401(await forge({ claims: { aud: ['another-api'] } }));
  });

  it('a token without typ at+jwt is 401', async () => {
    await expect401(await forge({ typ: 'JWT' }));
    await expect401(await forge({ typ: null }));
  });

  it('a token signed by another key that claims the same kid is 401', async () => {
    const other = generateKeyPairSync('ed25519').privateKey;
    await expect401(await forge({ key: other }));
    await expect401(await forge({ key: other, claims: { role: 'admin' } }));
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    await expect401(await forge({ key: ec, alg: 'ES256' }));
  });

  it('missing or bad claims are 401', async () => {
    await expect401(await forge({ claims: { role: 'superuser' } }));
    await expect401(await forge({ claims: { sub: undefined } }));
    await expect401(await forge({ claims: { exp: undefined } }));
  });

  it('a refresh token used as an access token is 401', async () => {
    const s = await registerUser();
    await expect401(s.refreshToken);
    expectSession(await refresh(s.refreshToken), 200); // and it still works as what it is
  });

  it('a valid token for a user who does not exist is 401', async () => {
    expectProblem(await me(await forge({ claims: { sub: uuidv7() } })), 401);
  });
});

describe('signing key rotation', () => {
  it('an app signing with a new key still accepts tokens of the old key listed in JWT_PUBLIC_KEYS', async () => {
    const s = await registerUser();
    const oldPublicPem = createPublicKey(t.config.jwt.privateKeyPem!).export({ type: 'spki', format: 'pem' }).toString();
    const newKey = testPrivateKey();
    const rotated = await createTestApp({ sharing: t, env: { JWT_PRIVATE_KEY: newKey, JWT_PUBLIC_KEYS: oldPublicPem } });
    extraApps.push(rotated);
    const oldKid = decodeProtectedHeader(s.accessToken).kid!;
    expect(rotated.keys.signing.kid).not.toBe(oldKid);

    expect((await me(s.accessToken, rotated.app)).statusCode).toBe(200);
    // New tokens carry the new kid; the JWKS lists both keys.
    const fresh = expectSession(await refresh(s.refreshToken, rotated.app), 200);
    expect(decodeProtectedHeader(fresh.accessToken).kid).toBe(rotated.keys.signing.kid);
    expect((await me(fresh.accessToken, rotated.app)).statusCode).toBe(200);
    const jwks = (await call({ method: 'GET', url: '/.well-known/jwks.json' }, undefined, rotated.app)).json<{ keys: { kid: string }[] }>();
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([oldKid, rotated.keys.signing.kid].sort());

    // Control: without the old public key the old token is refused.
    const newOnly = await createTestApp({ sharing: t, env: { JWT_PRIVATE_KEY: newKey } });
    extraApps.push(newOnly);
    expectProblem(await me(s.accessToken, newOnly.app), 401);
    expect((await me(fresh.accessToken, newOnly.app)).statusCode).toBe(200);
  });
});

describe('password rehash at login', () => {
  it('replaces a hash made with weaker parameters by one with the current parameters', async () => {
    const email = uniqueEmail('rehash');
    const password = 'old parameters password';
    const weak = await argon2Hash(password, { algorithm: 2 /* Argon2id */, memoryCost: 4096, timeCost: 1, parallelism: 1 });
    expect(weak).toMatch(/^\$argon2id\$v=19\$m=4096,t=1,p=1\$/);
    const user = await new UsersRepository(t.database.db).insert({ id: uuidv7(), email, passwordHash: weak, role: 'user', name: null });

    // A failed login changes nothing.
    expectProblem(await login({ email, password: 'not the password' }), 401);
    expect(await passwordHashOf(user.id)).toBe(weak);

    const s = expectSession(await login({ email, password }), 200);
    expect(s.user.id).toBe(user.id);
    const stored = await passwordHashOf(user.id);
    expect(stored.startsWith(CURRENT_HASH_PREFIX)).toBe(true);
    expect(stored).not.toBe(weak);

    // The new hash verifies, and is not rewritten again.
    expectSession(await login({ email, password }), 200);
    expect(await passwordHashOf(user.id)).toBe(stored);
  });
});

describe('deleted user', () => {
  it('their refresh and still-valid access tokens are refused', async () => {
    const email = uniqueEmail('gone');
    const reg = await registerUser(email);
    const other = await loginOk(email);
    const del = await call({ method: 'DELETE', url: '/v1/users/me' }, reg.accessToken);
    expect(del.statusCode).toBe(204);
    await t.deliverAccountEvents(); // the tasks module hears of the deletion (user.deleted)

    for (const token of [reg.refreshToken, other.refreshToken]) expectProblem(await refresh(token), 401);
    expectProblem(await me(reg.accessToken), 401);
    expectProblem(await me(other.accessToken), 401);
    expectProblem(await call({ method: 'POST', url: '/v1/tasks', payload: { title: 'ghost' } }, other.accessToken), 401);
    expectProblem(await login({ email, password: PASSWORD }), 401);
    // The address is free again.
    expectSession(await registerRaw({ email, password: PASSWORD } satisfies RegisterInput), 201);
  });
});
