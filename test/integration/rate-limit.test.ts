// Rate limiting against the real Redis (each app its own key prefix), across several instances,
// and through a Redis outage on a redis-server this file starts and kills itself. Durations are
// long (60 s and more) so that no window can roll over during a test; nothing asserts on timing.
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { as, createTestApp, uniqueEmail, type SessionBody, type TestApp } from '../helpers/app.js';
import { ownRedis, type OwnRedis } from '../helpers/redis-server.js';

const ON = { RATE_LIMIT_ENABLED: 'true' };
/** Generous quotas for the policies a test is not about. */
const LOOSE = {
  default: { points: 1000, duration: 600, blockDuration: 0 },
  'auth-ip': { points: 1000, duration: 600, blockDuration: 0 },
  'login-account-ip': { points: 1000, duration: 600, blockDuration: 0 },
  'login-account': { points: 1000, duration: 600, blockDuration: 0 },
  'password-change': { points: 1000, duration: 600, blockDuration: 0 },
};
const policies = (overrides: Partial<typeof LOOSE>) => JSON.stringify({ ...LOOSE, ...overrides });
const PASSWORD = 'correct horse battery';

let apps: TestApp[] = [];
afterEach(async () => {
  // Instances sharing another's database close first; the owner drops it and its keys.
  for (const t of apps.reverse()) await t.close();
  apps = [];
});

async function start(env: Record<string, string>, sharing?: TestApp): Promise<TestApp> {
  const t = await createTestApp({ env: { ...ON, ...env }, ...(sharing ? { sharing } : {}) });
  apps.push(t);
  // The limiters use Redis only once the connection is ready (before that: insurance limiter).
  await t.redis?.ping();
  return t;
}

/** The `RateLimit` header's entry for one policy: remaining r, seconds to reset t. */
function limitState(res: LightMyRequestResponse, policy = 'default'): { r: number; t: number } | undefined {
  const header = res.headers.ratelimit;
  if (typeof header !== 'string') return undefined;
  for (const item of header.split(/,\s*/)) {
    const m = /^"([^"]+)";r=(\d+);t=(\d+)$/.exec(item);
    if (m && m[1] === policy) return { r: Number(m[2]), t: Number(m[3]) };
  }
  return undefined;
}

function expect429(res: LightMyRequestResponse, policy: string): void {
  expect(res.statusCode, res.body).toBe(429);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(res.json()).toMatchObject({ type: 'urn:task-api:problem:too-many-requests', status: 429, title: 'Too Many Requests' });
  expect(res.json<{ detail: string }>().detail).toContain(`"${policy}"`);
  const retryAfter = String(res.headers['retry-after']);
  expect(retryAfter).toMatch(/^[0-9]+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(limitState(res, policy)?.r).toBe(0);
  expect(res.headers['ratelimit-policy']).toContain(`"${policy}";q=`);
}

async function registerFrom(app: FastifyInstance, remoteAddress: string, email = uniqueEmail('rl')): Promise<SessionBody> {
  const res = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password: PASSWORD }, remoteAddress });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return res.json<SessionBody>();
}

const get = (app: FastifyInstance, url: string, extra: Partial<InjectOptions> = {}) => app.inject({ method: 'GET', url, ...extra });

/** Every key of this app's limiters in Redis, without the app's prefix. */
async function limiterKeys(t: TestApp): Promise<string[]> {
  const prefix = t.config.redis.keyPrefix;
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await t.redis!.scan(cursor, 'MATCH', `${prefix}rl:*`, 'COUNT', 500);
    cursor = next;
    out.push(...keys.map((k) => k.slice(prefix.length)));
  } while (cursor !== '0');
  return out.sort();
}

describe('rate limiting', () => {
  it('counts down within the quota, then answers 429 problem+json with Retry-After; health and docs are never limited', async () => {
    const t = await start({ RATE_LIMIT_POINTS: '3', RATE_LIMIT_DURATION: '60', RATE_LIMIT_BLOCK_DURATION: '60' });
    const remaining: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await get(t.app, '/.well-known/jwks.json');
      expect(res.statusCode).toBe(200);
      expect(res.headers['ratelimit-policy']).toBe('"default";q=3;w=60');
      const state = limitState(res)!;
      expect(state.t).toBeGreaterThanOrEqual(1);
      expect(state.t).toBeLessThanOrEqual(60);
      remaining.push(state.r);
    }
    expect(remaining).toEqual([2, 1, 0]);

    const over = await get(t.app, '/.well-known/jwks.json');
    expect429(over, 'default');
    expect(over.headers['ratelimit-policy']).toBe('"default";q=3;w=60');
    expect(over.headers['x-request-id']).toBeDefined();
    expect(t.app.rateLimitStats.rejected.default).toBe(1);

    for (let i = 0; i < 20; i++) {
      for (const url of ['/health', '/health/live']) {
        const res = await get(t.app, url);
        expect(res.statusCode).toBe(200);
        expect(res.headers.ratelimit).toBeUndefined();
        expect(res.headers['ratelimit-policy']).toBeUndefined();
      }
    }
    for (const url of ['/openapi.json', '/docs/']) {
      const res = await get(t.app, url);
      expect(res.statusCode).toBe(200);
      expect(res.headers.ratelimit).toBeUndefined();
    }
    // Still over the limit (blocked for 60 s): the exempt requests did not change that.
    expect429(await get(t.app, '/.well-known/jwks.json'), 'default');
    expect(t.app.rateLimitStats.rejected.default).toBe(2);
  });

  it('three instances sharing Redis let exactly the quota through', async () => {
    const env = { RATE_LIMIT_POINTS: '30', RATE_LIMIT_DURATION: '600', RATE_LIMIT_BLOCK_DURATION: '600' };
    const first = await start(env);
    const instances = [first, await start(env, first), await start(env, first)];
    const user = await registerFrom(first.app, '10.20.0.1');
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => as(instances[i % 3]!.app, user.accessToken)({ method: 'GET', url: '/v1/users/me' })),
    );
    const statuses = responses.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 200)).toHaveLength(30);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30);
    // Each instance refused some and counted its own refusals.
    const rejected = instances.map((i) => i.app.rateLimitStats.rejected.default);
    expect(rejected.reduce((a, b) => a + b, 0)).toBe(30);
    const remaining = responses.filter((r) => r.statusCode === 200).map((r) => limitState(r)!.r);
    expect(remaining.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('login: an attacker\u2019s failures lock out their source only; the owner still logs in from theirs', async () => {
    const t = await start({
      RATE_LIMIT_POLICIES: policies({
        default: { points: 20, duration: 600, blockDuration: 600 },
        'auth-ip': { points: 20, duration: 600, blockDuration: 600 },
        'login-account-ip': { points: 3, duration: 600, blockDuration: 900 },
      }),
    });
    const victim = uniqueEmail('victim');
    await registerFrom(t.app, '10.30.0.1', victim);
    const login = (email: string, password: string, ip: string) =>
      t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password }, remoteAddress: ip });

    // Three failures from the attacker's address, spelled differently (the address is normalised) ...
    const spellings = [victim, `  ${victim.toUpperCase()}`, `${victim} `];
    for (let i = 0; i < 3; i++) {
      const res = await login(spellings[i]!, 'wrong password', '10.30.1.1');
      expect(res.statusCode).toBe(401);
      expect(limitState(res, 'login-account-ip')?.r).toBe(2 - i);
      // ... each far inside the per-IP, default and per-account quotas.
      expect(limitState(res, 'auth-ip')?.r).toBe(19 - i);
      expect(limitState(res, 'login-account')?.r).toBe(999 - i);
    }
    // The fourth from there is refused, and so is the right password from there.
    const refused = await login(victim, 'wrong password', '10.30.1.1');
    expect429(refused, 'login-account-ip');
    expect(refused.headers['ratelimit-policy']).toBe(
      '"default";q=20;w=600, "auth-ip";q=20;w=600, "login-account-ip";q=3;w=600',
    );
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(60);
    expect429(await login(victim, PASSWORD, '10.30.1.1'), 'login-account-ip');

    // The owner, from their own address, logs in as often as they like.
    for (let i = 0; i < 5; i++) {
      const ok = await login(victim, PASSWORD, '10.30.2.1');
      expect(ok.statusCode, ok.body).toBe(200);
      expect(limitState(ok, 'login-account-ip')?.r).toBe(2);
    }
    // Their own typos count against their source, and a success clears them.
    for (let round = 0; round < 2; round++) {
      expect((await login(victim, 'typo', '10.30.2.1')).statusCode).toBe(401);
      expect((await login(victim, 'typo', '10.30.2.1')).statusCode).toBe(401);
      expect((await login(victim, PASSWORD, '10.30.2.1')).statusCode).toBe(200);
    }
    // The attacker's source stays locked out meanwhile.
    expect429(await login(victim, 'wrong password', '10.30.1.1'), 'login-account-ip');
    expect(t.app.rateLimitStats.rejected['login-account-ip']).toBe(3);
    expect(t.app.rateLimitStats.rejected['login-account'] + t.app.rateLimitStats.rejected['auth-ip']).toBe(0);

    // Another account from the attacker's address is not affected.
    const other = uniqueEmail('other');
    await registerFrom(t.app, '10.30.0.2', other);
    expect((await login(other, PASSWORD, '10.30.1.1')).statusCode).toBe(200);

    // Keys are per account and source (the other account's was cleared by its success);
    // accounts are hashed: no address in Redis.
    const keys = await limiterKeys(t);
    expect(keys.filter((k) => k.startsWith('rl:login-account-ip:email:') && k.endsWith(':ip:10.30.1.1'))).toHaveLength(1);
    for (const k of keys) expect(k).not.toContain('@');
  });

  it('login: guessing spread over many sources meets the per-account limit once past its threshold', async () => {
    const t = await start({
      RATE_LIMIT_POLICIES: policies({
        'login-account-ip': { points: 3, duration: 600, blockDuration: 900 },
        'login-account': { points: 6, duration: 3600, blockDuration: 900 },
      }),
    });
    const victim = uniqueEmail('victim');
    await registerFrom(t.app, '10.31.0.1', victim);
    const login = (password: string, ip: string) =>
      t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: victim, password }, remoteAddress: ip });

    // Successful logins do not count towards it.
    for (let i = 0; i < 8; i++) {
      const ok = await login(PASSWORD, '10.31.0.1');
      expect(ok.statusCode).toBe(200);
      expect(limitState(ok, 'login-account')?.r).toBe(5);
    }
    // Six failures, one from each of six addresses: none reaches its per-source limit ...
    for (let i = 0; i < 6; i++) {
      const res = await login('wrong password', `10.31.1.${i + 1}`);
      expect(res.statusCode).toBe(401);
      expect(limitState(res, 'login-account-ip')?.r).toBe(2);
      expect(limitState(res, 'login-account')?.r).toBe(5 - i);
    }
    // ... but together they reach the account's: the seventh, from a fresh address, is refused,
    // and for its block time so is everyone, the owner included.
    const refused = await login('wrong password', '10.31.1.7');
    expect429(refused, 'login-account');
    expect(refused.headers['ratelimit-policy']).toContain('"login-account-ip";q=3;w=600, "login-account";q=6;w=3600');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(60);
    expect429(await login(PASSWORD, '10.31.0.1'), 'login-account');
    expect(t.app.rateLimitStats.rejected['login-account']).toBe(2);
    expect(t.app.rateLimitStats.rejected['login-account-ip']).toBe(0);

    // Other accounts are not affected.
    const other = uniqueEmail('other');
    await registerFrom(t.app, '10.31.0.2', other);
    const theirs = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: other, password: PASSWORD }, remoteAddress: '10.31.1.7' });
    expect(theirs.statusCode).toBe(200);
  });

  it('auth-ip limits registrations from one IP address', async () => {
    const t = await start({ RATE_LIMIT_POLICIES: policies({ 'auth-ip': { points: 3, duration: 600, blockDuration: 600 } }) });
    for (let i = 0; i < 3; i++) await registerFrom(t.app, '10.40.0.1');
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/register',
      payload: { email: uniqueEmail('rl'), password: PASSWORD },
      remoteAddress: '10.40.0.1',
    });
    expect429(res, 'auth-ip');
    // Malformed attempts count as well: the policy runs before validation.
    const bad = await t.app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email: 'nope' }, remoteAddress: '10.40.0.1' });
    expect(bad.statusCode).toBe(429);
    // Another address still registers; the login route shares the per-IP quota.
    await registerFrom(t.app, '10.40.0.2');
    const login = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'x@example.test', password: 'x' }, remoteAddress: '10.40.0.1' });
    expect429(login, 'auth-ip');
    expect(t.app.rateLimitStats.rejected['auth-ip']).toBe(3);
  });

  it('password changes are limited per user; other profile changes are not', async () => {
    const t = await start({ RATE_LIMIT_POLICIES: policies({ 'password-change': { points: 2, duration: 900, blockDuration: 900 } }) });
    const ann = await registerFrom(t.app, '10.50.0.1');
    const bob = await registerFrom(t.app, '10.50.0.2');
    const change = (s: SessionBody) =>
      as(t.app, s.accessToken)({ method: 'PATCH', url: '/v1/users/me', payload: { password: 'new password 123', currentPassword: 'wrong guess' } });
    for (let i = 0; i < 2; i++) {
      const res = await change(ann);
      expect(res.statusCode).toBe(400);
      expect(limitState(res, 'password-change')?.r).toBe(1 - i);
    }
    expect429(await change(ann), 'password-change');
    const rename = await as(t.app, ann.accessToken)({ method: 'PATCH', url: '/v1/users/me', payload: { name: 'Ann' } });
    expect(rename.statusCode).toBe(200);
    expect(limitState(rename, 'password-change')).toBeUndefined();
    expect((await change(bob)).statusCode).toBe(400);
    expect(t.app.rateLimitStats.rejected['password-change']).toBe(1);
  });

  it('keys by user when authenticated (users behind one IP have their own quotas) and by IP otherwise', async () => {
    const t = await start({ RATE_LIMIT_POINTS: '3', RATE_LIMIT_DURATION: '600', RATE_LIMIT_BLOCK_DURATION: '600' });
    const ann = await registerFrom(t.app, '10.60.0.1');
    const bob = await registerFrom(t.app, '10.60.0.2');
    const me = (s: SessionBody) => as(t.app, s.accessToken)({ method: 'GET', url: '/v1/users/me', remoteAddress: '10.60.1.1' });
    for (let i = 0; i < 3; i++) expect((await me(ann)).statusCode).toBe(200);
    expect429(await me(ann), 'default');
    const bobs = await me(bob);
    expect(bobs.statusCode).toBe(200);
    expect(limitState(bobs)?.r).toBe(2);
    // The shared address's anonymous quota is untouched by its users' requests ...
    const anon = await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.60.1.1' });
    expect(limitState(anon)?.r).toBe(2);
    // ... and is its own: exhausting it leaves other addresses and the users alone.
    await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.60.1.1' });
    await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.60.1.1' });
    expect429(await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.60.1.1' }), 'default');
    expect((await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.60.1.2' })).statusCode).toBe(200);
    expect((await me(bob)).statusCode).toBe(200);

    const keys = await limiterKeys(t);
    expect(keys).toContain(`rl:default:user:${ann.user.id}`);
    expect(keys).toContain(`rl:default:user:${bob.user.id}`);
    expect(keys).toContain('rl:default:ip:10.60.1.1');
  });

  it('requests refused for a missing or bad token are counted by IP, so a token-guessing flood is limited', async () => {
    const t = await start({ RATE_LIMIT_POINTS: '3', RATE_LIMIT_DURATION: '600', RATE_LIMIT_BLOCK_DURATION: '600' });
    const guess = (token: string) => get(t.app, '/v1/tasks', { headers: { authorization: `Bearer ${token}` }, remoteAddress: '10.61.0.1' });
    const first = await guess('not.a.token');
    expect(first.statusCode).toBe(401);
    expect(limitState(first)?.r).toBe(2);
    expect((await get(t.app, '/v1/tasks', { remoteAddress: '10.61.0.1' })).statusCode).toBe(401); // no token at all
    expect((await guess('still.not.valid')).statusCode).toBe(401);
    expect429(await guess('yet.another.guess'), 'default');
    expect(await limiterKeys(t)).toContain('rl:default:ip:10.61.0.1');
    // A valid user on the same address keeps their own quota.
    const ann = await registerFrom(t.app, '10.61.0.2');
    expect((await as(t.app, ann.accessToken)({ method: 'GET', url: '/v1/tasks', remoteAddress: '10.61.0.1' })).statusCode).toBe(200);
  });

  it('X-Forwarded-For is ignored unless TRUST_PROXY names the proxy', async () => {
    const env = { RATE_LIMIT_POINTS: '2', RATE_LIMIT_DURATION: '600', RATE_LIMIT_BLOCK_DURATION: '600' };
    const direct = await start(env);
    const spoofed = (app: FastifyInstance, ip: string) => get(app, '/.well-known/jwks.json', { remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': ip } });
    expect((await spoofed(direct.app, '203.0.113.1')).statusCode).toBe(200);
    expect((await spoofed(direct.app, '203.0.113.2')).statusCode).toBe(200);
    expect429(await spoofed(direct.app, '203.0.113.3'), 'default');
    expect(await limiterKeys(direct)).toEqual(['rl:default:ip:127.0.0.1']);

    const proxied = await start({ ...env, TRUST_PROXY: '127.0.0.1' });
    for (const ip of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) {
      const res = await spoofed(proxied.app, ip);
      expect(res.statusCode).toBe(200);
      expect(limitState(res)?.r).toBe(1);
    }
    expect((await spoofed(proxied.app, '203.0.113.1')).statusCode).toBe(200);
    expect429(await spoofed(proxied.app, '203.0.113.1'), 'default');
    expect((await spoofed(proxied.app, '203.0.113.2')).statusCode).toBe(200);
    // Only the configured proxy is trusted: from elsewhere the header means nothing.
    const other = await get(proxied.app, '/.well-known/jwks.json', { remoteAddress: '10.70.0.1', headers: { 'x-forwarded-for': '203.0.113.2' } });
    expect(limitState(other)?.r).toBe(1);
    expect(await limiterKeys(proxied)).toEqual(['rl:default:ip:10.70.0.1', 'rl:default:ip:203.0.113.1', 'rl:default:ip:203.0.113.2', 'rl:default:ip:203.0.113.3']);
  });

  it('every limiter key in Redis carries a TTL', async () => {
    const t = await start({
      RATE_LIMIT_POLICIES: policies({
        default: { points: 2, duration: 60, blockDuration: 0 },
        'auth-ip': { points: 1, duration: 120, blockDuration: 300 },
        'login-account-ip': { points: 1, duration: 60, blockDuration: 900 },
        'login-account': { points: 2, duration: 3600, blockDuration: 900 },
      }),
    });
    await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.80.0.1' });
    await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.80.0.1' });
    expect((await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.80.0.1' })).statusCode).toBe(429);
    for (let i = 0; i < 3; i++) {
      await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: 'ttl@example.test', password: 'x' }, remoteAddress: `10.80.1.${i % 2}` });
    }
    const keys = await limiterKeys(t);
    expect(keys.length).toBeGreaterThanOrEqual(5);
    expect(keys.some((k) => k.startsWith('rl:default:'))).toBe(true);
    expect(keys.some((k) => k.startsWith('rl:auth-ip:'))).toBe(true);
    expect(keys.some((k) => k.startsWith('rl:login-account-ip:'))).toBe(true);
    expect(keys.some((k) => k.startsWith('rl:login-account:'))).toBe(true);
    for (const key of keys) {
      const ttl = await t.redis!.ttl(key);
      expect(ttl, key).toBeGreaterThan(0);
      expect(ttl, key).toBeLessThanOrEqual(3600);
    }
  });

  it('RATE_LIMIT_ENABLED=false: no headers, no 429', async () => {
    const t = await start({ RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_POINTS: '1', RATE_LIMIT_DURATION: '600' });
    const user = await registerFrom(t.app, '10.90.0.1');
    for (let i = 0; i < 5; i++) {
      for (const res of [
        await get(t.app, '/.well-known/jwks.json'),
        await as(t.app, user.accessToken)({ method: 'GET', url: '/v1/users/me' }),
        await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: user.user.email, password: 'wrong' } }),
      ]) {
        expect(res.statusCode).not.toBe(429);
        expect(res.headers.ratelimit).toBeUndefined();
        expect(res.headers['ratelimit-policy']).toBeUndefined();
      }
    }
    expect(t.app.rateLimitStats.rejected).toEqual({ default: 0, 'auth-ip': 0, 'login-account-ip': 0, 'login-account': 0, 'password-change': 0 });
    expect(await limiterKeys(t)).toEqual([]);
  });

  it('embedded (no Redis): in-memory limiters', async () => {
    const t = await createTestApp({ embedded: true, env: { ...ON, RATE_LIMIT_POINTS: '2', RATE_LIMIT_DURATION: '600' } });
    apps.push(t);
    expect(t.redis).toBeUndefined();
    expect(limitState(await get(t.app, '/.well-known/jwks.json'))?.r).toBe(1);
    expect(limitState(await get(t.app, '/.well-known/jwks.json'))?.r).toBe(0);
    expect429(await get(t.app, '/.well-known/jwks.json'), 'default');
  });
});

describe('rate limiting when Redis fails', () => {
  let redis: OwnRedis | undefined;
  const stopRedis = () => redis?.kill() ?? Promise.resolve();

  /** Polls (bounded) until the app's Redis connection reaches the wanted state. */
  async function until(t: TestApp, ready: boolean): Promise<void> {
    for (let i = 0; i < 300 && (t.redis!.status === 'ready') !== ready; i++) await new Promise((r) => setTimeout(r, 20));
    expect(t.redis!.status === 'ready').toBe(ready);
  }

  // Runs before the file's afterEach: close the apps while this redis-server may still be up.
  afterEach(async () => {
    for (const t of apps.reverse()) await t.close();
    apps = [];
    await stopRedis();
  });

  it('falls back to the per-instance insurance limiter, never a 5xx, and returns to Redis when it is back', async () => {
    redis = await ownRedis();
    await redis.start();
    const t = await start({ REDIS_URL: redis.url, RATE_LIMIT_POINTS: '5', RATE_LIMIT_DURATION: '600', RATE_LIMIT_BLOCK_DURATION: '600' });
    const user = await registerFrom(t.app, '10.100.0.1');
    const me = () => as(t.app, user.accessToken)({ method: 'GET', url: '/v1/users/me' });
    expect(limitState(await me())?.r).toBe(4);
    expect(limitState(await me())?.r).toBe(3);
    expect(await limiterKeys(t)).toContain(`rl:default:user:${user.user.id}`);

    await stopRedis();
    await until(t, false);

    // The insurance limiter starts its own count on this instance and enforces the same quota.
    const during: LightMyRequestResponse[] = [];
    for (let i = 0; i < 8; i++) during.push(await me());
    for (const res of during) expect(res.statusCode).toBeLessThan(500);
    expect(during.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(during.slice(0, 5).map((r) => limitState(r)?.r)).toEqual([4, 3, 2, 1, 0]);
    expect429(during[5]!, 'default');
    const anon = await get(t.app, '/.well-known/jwks.json', { remoteAddress: '10.100.0.9' });
    expect(anon.statusCode).toBe(200);
    expect(limitState(anon)?.r).toBe(4);
    const health = await get(t.app, '/health');
    expect(health.statusCode).toBe(200);
    expect(health.headers.ratelimit).toBeUndefined();

    // Back on the same port (empty: it kept nothing): counting happens in Redis again, where
    // this user has a fresh quota although the insurance limiter still blocks them.
    await redis.start();
    await until(t, true);
    const after = await me();
    expect(after.statusCode).toBe(200);
    expect(limitState(after)?.r).toBe(4);
    expect(await limiterKeys(t)).toEqual([`rl:default:user:${user.user.id}`]);
    // Close while this redis-server still runs, so the app's connection quits cleanly.
    apps.splice(apps.indexOf(t), 1);
    await t.close();
  });
});
