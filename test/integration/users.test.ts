import type { FastifyInstance, HTTPMethods, InjectOptions, LightMyRequestResponse, RouteOptions } from 'fastify';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { authLevelOf, type AuthLevel } from '../../src/http/auth.js';
import { RedisTokenStore } from '../../src/infra/token-store/redis.js';
import type { CreateTaskInput } from '../../src/modules/tasks/schemas.js';
import type { UpdateMeInput } from '../../src/modules/users/schemas.js';
import { uuidv7 } from '../../src/shared/ids.js';
import { createTestApp, register, registerAdmin, uniqueEmail, type SessionBody, type TestApp } from '../helpers/app.js';
import type { AdminUpdateInput, LoginInput, ProblemBody, RefreshInput, UserBody } from '../helpers/bodies.js';

interface UserPageBody {
  data: UserBody[];
  nextCursor: string | null;
}
interface AdminTaskBody {
  id: string;
  title: string;
  createdAt: string;
  owner: { id: string; email: string; role: string };
}
interface AdminTaskPageBody {
  data: AdminTaskBody[];
  nextCursor: string | null;
}

const PASSWORD = 'correct horse battery';
const ADMIN_PASSWORD = 'admin password 1'; // the one registerAdmin uses
const missingId = '01900000-0000-7000-8000-000000000000';

let t: TestApp;
/** The only admin when the file starts (the database is fresh per file). */
let admin: SessionBody;

beforeAll(async () => {
  t = await createTestApp();
  admin = await registerAdmin(t);
});
afterAll(() => t.close());

function assertNoSecrets(res: LightMyRequestResponse): void {
  expect(res.body).not.toMatch(/\$argon2/);
  expect(res.body).not.toMatch(/"password_?hash"\s*:/i);
}

/** app.inject through the leak check; `token` adds a Bearer header. */
async function call(opts: InjectOptions, token?: string, app: FastifyInstance = t.app): Promise<LightMyRequestResponse> {
  const headers = token === undefined ? opts.headers : { authorization: `Bearer ${token}`, ...opts.headers };
  const res = await app.inject({ ...opts, ...(headers ? { headers } : {}) });
  assertNoSecrets(res);
  return res;
}
const by = (token: string) => (opts: InjectOptions) => call(opts, token);

function expectProblem(res: LightMyRequestResponse, status: number): ProblemBody {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toContain('application/problem+json');
  return res.json<ProblemBody>();
}
const fieldsOf = (p: ProblemBody) => (p.errors ?? []).map((e) => e.field);

async function login(email: string, password = PASSWORD): Promise<LightMyRequestResponse> {
  return call({ method: 'POST', url: '/v1/auth/login', payload: { email, password } satisfies LoginInput });
}
const refresh = (refreshToken: string) => call({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } satisfies RefreshInput });

async function userRow(id: string) {
  const [row] = await t.database.raw.query<{ email: string; role: string; name: string | null; password_hash: string }>(
    'select email, role, name, password_hash from users where id = $1',
    [id],
  );
  return row;
}
async function countTasks(userId?: string): Promise<number> {
  const [row] = userId
    ? await t.database.raw.query<{ n: number }>('select count(*)::int as n from tasks where user_id = $1', [userId])
    : await t.database.raw.query<{ n: number }>('select count(*)::int as n from tasks');
  return row!.n;
}
async function countAdmins(): Promise<number> {
  const [row] = await t.database.raw.query<{ n: number }>(`select count(*)::int as n from users where role = 'admin'`);
  return row!.n;
}

async function createTask(s: SessionBody, title: string): Promise<{ id: string }> {
  const res = await call({ method: 'POST', url: '/v1/tasks', payload: { title } satisfies CreateTaskInput }, s.accessToken);
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ id: string }>();
}

describe('profile (/v1/users/me)', () => {
  it('GET returns the caller', async () => {
    const s = await register(t.app);
    const res = await call({ method: 'GET', url: '/v1/users/me' }, s.accessToken);
    expect(res.statusCode).toBe(200);
    const u = res.json<UserBody>();
    expect(u).toEqual(s.user);
    expect(Object.keys(u).sort()).toEqual(['createdAt', 'email', 'id', 'name', 'role', 'updatedAt']);
  });

  it('PATCH changes the name, and name:null clears it', async () => {
    const s = await register(t.app);
    const req = by(s.accessToken);
    const before = (await req({ method: 'GET', url: '/v1/users/me' })).json<UserBody>();
    const named = await req({ method: 'PATCH', url: '/v1/users/me', payload: { name: 'Alice Liddell' } satisfies UpdateMeInput });
    expect(named.statusCode, named.body).toBe(200);
    const u = named.json<UserBody>();
    expect(u).toMatchObject({ id: s.user.id, email: s.user.email, role: 'user', name: 'Alice Liddell' });
    expect(Date.parse(u.updatedAt)).toBeGreaterThan(Date.parse(before.updatedAt));
    expect((await req({ method: 'GET', url: '/v1/users/me' })).json<UserBody>().name).toBe('Alice Liddell');

    const cleared = await req({ method: 'PATCH', url: '/v1/users/me', payload: { name: null } satisfies UpdateMeInput });
    expect(cleared.statusCode).toBe(200);
    expect(cleared.json<UserBody>().name).toBeNull();
    expect((await userRow(s.user.id))!.name).toBeNull();

    for (const name of ['', '   ', 'x'.repeat(101)]) {
      expect(fieldsOf(expectProblem(await req({ method: 'PATCH', url: '/v1/users/me', payload: { name } }), 400))).toContain('name');
    }
  });

  it('PATCH password without currentPassword is 400 naming currentPassword', async () => {
    const s = await register(t.app);
    const p = expectProblem(await by(s.accessToken)({ method: 'PATCH', url: '/v1/users/me', payload: { password: 'new password 123' } satisfies UpdateMeInput }), 400);
    expect(fieldsOf(p)).toContain('currentPassword');
    expect((await login(s.user.email)).statusCode).toBe(200);
  });

  it('PATCH password with a wrong currentPassword is 400 and changes nothing', async () => {
    const s = await register(t.app);
    const before = await userRow(s.user.id);
    const p = expectProblem(
      await by(s.accessToken)({
        method: 'PATCH',
        url: '/v1/users/me',
        payload: { name: 'Changed?', password: 'new password 123', currentPassword: 'not my password' } satisfies UpdateMeInput,
      }),
      400,
    );
    expect(fieldsOf(p)).toContain('currentPassword');
    expect(await userRow(s.user.id)).toEqual(before);
    expect((await login(s.user.email)).statusCode).toBe(200);
    expect((await login(s.user.email, 'new password 123')).statusCode).toBe(401);
    // The session survives a failed attempt.
    expect((await refresh(s.refreshToken)).statusCode).toBe(200);
  });

  it('PATCH currentPassword alone, or a too-short new password, is 400', async () => {
    const s = await register(t.app);
    const req = by(s.accessToken);
    expect(fieldsOf(expectProblem(await req({ method: 'PATCH', url: '/v1/users/me', payload: { currentPassword: PASSWORD } satisfies UpdateMeInput }), 400))).toContain(
      'currentPassword',
    );
    expect(
      fieldsOf(expectProblem(await req({ method: 'PATCH', url: '/v1/users/me', payload: { password: 'short', currentPassword: PASSWORD } satisfies UpdateMeInput }), 400)),
    ).toContain('password');
  });

  it('PATCH with an empty body is 400', async () => {
    const s = await register(t.app);
    expectProblem(await by(s.accessToken)({ method: 'PATCH', url: '/v1/users/me', payload: {} }), 400);
  });

  it('PATCH with role, email or id is 400 and changes nothing (mass assignment)', async () => {
    const s = await register(t.app);
    const req = by(s.accessToken);
    const before = await userRow(s.user.id);
    const attempts: Record<string, unknown>[] = [
      { role: 'admin' },
      { email: uniqueEmail('steal') },
      { id: uuidv7() },
      { name: 'Sneaky', role: 'admin' },
      { passwordHash: 'x' },
      { createdAt: '2000-01-01T00:00:00Z' },
    ];
    for (const payload of attempts) {
      const p = expectProblem(await req({ method: 'PATCH', url: '/v1/users/me', payload }), 400);
      const extra = Object.keys(payload).find((k) => k !== 'name')!;
      expect(fieldsOf(p)).toContain(extra);
    }
    expect(await userRow(s.user.id)).toEqual(before);
    expect((await req({ method: 'GET', url: '/v1/users/me' })).json<UserBody>()).toEqual(s.user);
    // Still a plain user at the edge too.
    expectProblem(await req({ method: 'GET', url: '/v1/users' }), 403);
  });

  it('DELETE removes the account and its tasks', async () => {
    const s = await register(t.app);
    const keep = await register(t.app);
    await createTask(s, 'one');
    await createTask(s, 'two');
    await createTask(keep, 'not mine');
    expect(await countTasks(s.user.id)).toBe(2);

    const res = await by(s.accessToken)({ method: 'DELETE', url: '/v1/users/me' });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    // The tasks go when the tasks module applies user.deleted (eventually: here, delivered now).
    expect(await countTasks(s.user.id)).toBe(2);
    expect(await t.deliverAccountEvents()).toBeGreaterThan(0);
    expect(await countTasks(s.user.id)).toBe(0);
    expect(await userRow(s.user.id)).toBeUndefined();
    expect(await countTasks(keep.user.id)).toBe(1);
    expectProblem(await by(s.accessToken)({ method: 'GET', url: '/v1/users/me' }), 401);
  });
});

describe('admin user management', () => {
  it('the last admin can neither demote nor delete themselves (409)', async () => {
    expect(await countAdmins()).toBe(1);
    const req = by(admin.accessToken);
    const demote = expectProblem(await req({ method: 'PATCH', url: `/v1/users/${admin.user.id}`, payload: { role: 'user' } satisfies AdminUpdateInput }), 409);
    expect(demote.type).toBe('urn:task-api:problem:last-admin');
    expect(expectProblem(await req({ method: 'DELETE', url: `/v1/users/${admin.user.id}` }), 409).type).toBe('urn:task-api:problem:last-admin');
    expect(expectProblem(await req({ method: 'DELETE', url: '/v1/users/me' }), 409).type).toBe('urn:task-api:problem:last-admin');
    expect((await userRow(admin.user.id))!.role).toBe('admin');
    expect(await countAdmins()).toBe(1);
    // Renaming oneself, or re-asserting the admin role, is fine.
    const renamed = await req({ method: 'PATCH', url: `/v1/users/${admin.user.id}`, payload: { name: 'Root', role: 'admin' } satisfies AdminUpdateInput });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json<UserBody>()).toMatchObject({ name: 'Root', role: 'admin' });
  });

  it('lists users page by page with nextCursor, without duplicates', async () => {
    for (let i = 0; i < 5; i++) await register(t.app);
    const [{ n: total }] = (await t.database.raw.query<{ n: number }>('select count(*)::int as n from users')) as [{ n: number }];
    const req = by(admin.accessToken);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/v1/users?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const res = await req({ method: 'GET', url });
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json<UserPageBody>();
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((u) => u.id));
      cursor = page.nextCursor;
      pages++;
      expect(pages).toBeLessThan(100);
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(total);
    expect(seen).toContain(admin.user.id);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(total / 2));

    const all = (await req({ method: 'GET', url: '/v1/users?limit=100' })).json<UserPageBody>();
    expect(all.nextCursor).toBeNull();
    expect(all.data.map((u) => u.id)).toEqual(seen);

    expect(fieldsOf(expectProblem(await req({ method: 'GET', url: '/v1/users?cursor=bogus' }), 400))).toContain('cursor');
    expect(fieldsOf(expectProblem(await req({ method: 'GET', url: '/v1/users?limit=0' }), 400))).toContain('limit');
    expect(fieldsOf(expectProblem(await req({ method: 'GET', url: '/v1/users?limit=101' }), 400))).toContain('limit');
  });

  it('GET/PATCH/DELETE /v1/users/:id: bad uuid is 400, unknown id is 404', async () => {
    const req = by(admin.accessToken);
    for (const [method, payload] of [['GET'], ['PATCH', { name: 'x' }], ['DELETE']] as const) {
      const bad = expectProblem(await req({ method, url: '/v1/users/not-a-uuid', ...(payload ? { payload } : {}) }), 400);
      expect(bad.errors).toContainEqual(expect.objectContaining({ field: 'id' }));
      expectProblem(await req({ method, url: `/v1/users/${missingId}`, ...(payload ? { payload } : {}) }), 404);
    }
    expectProblem(await req({ method: 'PATCH', url: `/v1/users/${missingId}`, payload: { role: 'user' } satisfies AdminUpdateInput }), 404);
    expectProblem(await req({ method: 'PATCH', url: `/v1/users/${missingId}`, payload: { role: 'admin' } satisfies AdminUpdateInput }), 404);
  });

  it('GET and PATCH another user; bad bodies are 400', async () => {
    const s = await register(t.app);
    const req = by(admin.accessToken);
    const got = await req({ method: 'GET', url: `/v1/users/${s.user.id}` });
    expect(got.statusCode).toBe(200);
    expect(got.json<UserBody>()).toEqual(s.user);

    const renamed = await req({ method: 'PATCH', url: `/v1/users/${s.user.id}`, payload: { name: 'Renamed by admin' } satisfies AdminUpdateInput });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json<UserBody>()).toMatchObject({ id: s.user.id, name: 'Renamed by admin', role: 'user' });

    const before = await userRow(s.user.id);
    for (const payload of [{}, { role: 'superuser' }, { email: uniqueEmail() }, { password: 'new password 123' }, { id: uuidv7() }]) {
      expectProblem(await req({ method: 'PATCH', url: `/v1/users/${s.user.id}`, payload }), 400);
    }
    expect(await userRow(s.user.id)).toEqual(before);
  });

  it('promotes a user: their next login token carries role admin', async () => {
    const s = await register(t.app);
    const res = await by(admin.accessToken)({ method: 'PATCH', url: `/v1/users/${s.user.id}`, payload: { role: 'admin' } satisfies AdminUpdateInput });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<UserBody>().role).toBe('admin');

    const fresh = (await login(s.user.email)).json<SessionBody>();
    expect(fresh.user.role).toBe('admin');
    expect(decodeJwt(fresh.accessToken).role).toBe('admin');
    expect((await by(fresh.accessToken)({ method: 'GET', url: '/v1/users' })).statusCode).toBe(200);
    // A refresh also picks up the current role.
    const refreshed = (await refresh(s.refreshToken)).json<SessionBody>();
    expect(decodeJwt(refreshed.accessToken).role).toBe('admin');

    // With two admins, demotion works (here: of the promoted one, back to user).
    expect(await countAdmins()).toBe(2);
    const demoted = await by(admin.accessToken)({ method: 'PATCH', url: `/v1/users/${s.user.id}`, payload: { role: 'user' } satisfies AdminUpdateInput });
    expect(demoted.statusCode, demoted.body).toBe(200);
    expect(demoted.json<UserBody>().role).toBe('user');
    const after = (await login(s.user.email)).json<SessionBody>();
    expect(decodeJwt(after.accessToken).role).toBe('user');
    expectProblem(await by(after.accessToken)({ method: 'GET', url: '/v1/users' }), 403);
    expect(await countAdmins()).toBe(1);
  });

  it('with two admins an admin can demote themselves, then the other is the last one', async () => {
    const other = await register(t.app);
    expect((await by(admin.accessToken)({ method: 'PATCH', url: `/v1/users/${other.user.id}`, payload: { role: 'admin' } satisfies AdminUpdateInput })).statusCode).toBe(200);
    const otherAdmin = (await login(other.user.email)).json<SessionBody>();

    // The second admin demotes themselves: allowed, one admin remains.
    const self = await by(otherAdmin.accessToken)({ method: 'PATCH', url: `/v1/users/${other.user.id}`, payload: { role: 'user' } satisfies AdminUpdateInput });
    expect(self.statusCode, self.body).toBe(200);
    expect(await countAdmins()).toBe(1);
    expectProblem(await by(admin.accessToken)({ method: 'PATCH', url: `/v1/users/${admin.user.id}`, payload: { role: 'user' } satisfies AdminUpdateInput }), 409);
  });

  it('two admins demoting each other at once: exactly one succeeds and one admin remains', async () => {
    const other = await register(t.app);
    await by(admin.accessToken)({ method: 'PATCH', url: `/v1/users/${other.user.id}`, payload: { role: 'admin' } satisfies AdminUpdateInput });
    const otherAdmin = (await login(other.user.email)).json<SessionBody>();
    expect(await countAdmins()).toBe(2);
    const results = await Promise.all([
      by(admin.accessToken)({ method: 'PATCH', url: `/v1/users/${other.user.id}`, payload: { role: 'user' } satisfies AdminUpdateInput }),
      by(otherAdmin.accessToken)({ method: 'PATCH', url: `/v1/users/${admin.user.id}`, payload: { role: 'user' } satisfies AdminUpdateInput }),
    ]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    expect(await countAdmins()).toBe(1);
    // Restore: the file's admin must stay the admin for the tests below.
    if ((await userRow(admin.user.id))!.role !== 'admin') {
      await by(otherAdmin.accessToken)({ method: 'PATCH', url: `/v1/users/${admin.user.id}`, payload: { role: 'admin' } satisfies AdminUpdateInput });
      await by(otherAdmin.accessToken)({ method: 'PATCH', url: `/v1/users/${other.user.id}`, payload: { role: 'user' } satisfies AdminUpdateInput });
      admin = (await login(admin.user.email, ADMIN_PASSWORD)).json<SessionBody>();
    }
    expect((await userRow(admin.user.id))!.role).toBe('admin');
    expect(await countAdmins()).toBe(1);
  });

  it('deletes another user with their tasks and sessions', async () => {
    const s = await register(t.app);
    await createTask(s, 'doomed');
    const req = by(admin.accessToken);
    const res = await req({ method: 'DELETE', url: `/v1/users/${s.user.id}` });
    expect(res.statusCode).toBe(204);
    expectProblem(await req({ method: 'GET', url: `/v1/users/${s.user.id}` }), 404);
    expectProblem(await req({ method: 'DELETE', url: `/v1/users/${s.user.id}` }), 404);
    await t.deliverAccountEvents();
    expect(await countTasks(s.user.id)).toBe(0);
    expectProblem(await refresh(s.refreshToken), 401);
    expectProblem(await by(s.accessToken)({ method: 'GET', url: '/v1/users/me' }), 401);
  });

  it('deleting a second admin works; the last one stays', async () => {
    const other = await register(t.app);
    await by(admin.accessToken)({ method: 'PATCH', url: `/v1/users/${other.user.id}`, payload: { role: 'admin' } satisfies AdminUpdateInput });
    const otherAdmin = (await login(other.user.email)).json<SessionBody>();
    expect((await by(otherAdmin.accessToken)({ method: 'DELETE', url: '/v1/users/me' })).statusCode).toBe(204);
    expect(await countAdmins()).toBe(1);
    expectProblem(await by(admin.accessToken)({ method: 'DELETE', url: '/v1/users/me' }), 409);
  });
});

describe('role matrix from the route table', () => {
  interface RouteInfo {
    method: HTTPMethods;
    url: string;
    level: AuthLevel;
  }
  const routes: RouteInfo[] = [];
  let matrixApp: FastifyInstance;
  let user: SessionBody;

  beforeAll(async () => {
    // A second instance of the app on the same database, Redis prefix and keys, recording its
    // route table as it is built.
    matrixApp = await buildApp({
      config: t.config,
      database: t.database,
      tokenStore: new RedisTokenStore(t.redis!),
      keys: t.keys,
      logger: false,
      onRoute: (route: RouteOptions) => {
        const methods = Array.isArray(route.method) ? route.method : [route.method];
        for (const method of methods) routes.push({ method, url: route.url, level: authLevelOf(route.config) });
      },
    });
    await matrixApp.ready();
    user = await register(t.app);
  });
  afterAll(() => matrixApp.close());

  // A valid-looking request for each route, so that the auth check is what answers.
  const sampleUrl = (url: string) => url.replace(/:id\b/g, uuidv7()).replace(/\*$/, 'x');
  const sampleBodies: Record<string, object> = {
    'POST /v1/tasks': { title: 'matrix' } satisfies CreateTaskInput,
    'PATCH /v1/tasks/:id': { title: 'matrix' },
    'PATCH /v1/users/me': { name: 'matrix' } satisfies UpdateMeInput,
    'PATCH /v1/users/:id': { name: 'matrix' } satisfies AdminUpdateInput,
  };
  const request = (r: RouteInfo, token?: string): Promise<LightMyRequestResponse> => {
    const body = sampleBodies[`${r.method} ${r.url}`] ?? (['POST', 'PUT', 'PATCH'].includes(r.method) ? {} : undefined);
    return call({ method: r.method, url: sampleUrl(r.url), ...(body ? { payload: body } : {}) }, token, matrixApp);
  };
  const v1 = (level: AuthLevel) => routes.filter((r) => r.url.startsWith('/v1/') && r.level === level);

  it('captures the route table', () => {
    const keys = routes.map((r) => `${r.method} ${r.url}`);
    for (const k of ['GET /v1/users', 'GET /v1/users/:id', 'PATCH /v1/users/:id', 'DELETE /v1/users/:id', 'GET /v1/admin/tasks']) {
      expect(v1('admin').map((r) => `${r.method} ${r.url}`)).toContain(k);
    }
    for (const k of ['GET /v1/users/me', 'PATCH /v1/users/me', 'DELETE /v1/users/me', 'POST /v1/tasks', 'GET /v1/tasks', 'GET /v1/tasks/:id', 'PATCH /v1/tasks/:id', 'DELETE /v1/tasks/:id']) {
      expect(v1('user').map((r) => `${r.method} ${r.url}`)).toContain(k);
    }
    expect(v1('public').map((r) => r.url).sort()).toEqual(['/v1/auth/login', '/v1/auth/logout', '/v1/auth/refresh', '/v1/auth/register']);
    expect(keys).toContain('GET /.well-known/jwks.json');
  });

  it('admin routes: no token is 401, a user token is 403', async () => {
    const countBefore = await t.database.raw.query('select id, role, name from users order by id');
    for (const r of v1('admin')) {
      const anon = await request(r);
      expect(anon.statusCode, `${r.method} ${r.url} without a token`).toBe(401);
      expect(anon.headers['www-authenticate']).toBe('Bearer');
      const asUser = await request(r, user.accessToken);
      expect(asUser.statusCode, `${r.method} ${r.url} as a user`).toBe(403);
    }
    expect(await t.database.raw.query('select id, role, name from users order by id')).toEqual(countBefore);
  });

  it('user routes: no token is 401', async () => {
    for (const r of v1('user')) {
      const anon = await request(r);
      expect(anon.statusCode, `${r.method} ${r.url} without a token`).toBe(401);
    }
    // The token is what matters: the user's own profile still answers.
    expect((await call({ method: 'GET', url: '/v1/users/me' }, user.accessToken, matrixApp)).statusCode).toBe(200);
  });

  it('public routes (and everything outside /v1) answer without a token', async () => {
    for (const r of routes.filter((x) => x.level === 'public' || !x.url.startsWith('/v1/'))) {
      const res = await request(r);
      expect([401, 403], `${r.method} ${r.url} without a token: ${res.statusCode}`).not.toContain(res.statusCode);
    }
  });

  it('a percent-encoded path reaches the same route and the same auth check', async () => {
    // %76 is "v": the router decodes it, so the edge check must not look at the raw URL.
    const anon = await call({ method: 'GET', url: '/%761/users' }, undefined, matrixApp);
    expect(anon.statusCode).toBe(401);
    const asUser = await call({ method: 'GET', url: '/%761/users' }, user.accessToken, matrixApp);
    expect(asUser.statusCode).toBe(403);
    const asAdmin = await call({ method: 'GET', url: '/%761/users' }, admin.accessToken, matrixApp);
    expect(asAdmin.statusCode).toBe(200);
    const mine = await call({ method: 'GET', url: '/%761/users/m%65' }, user.accessToken, matrixApp);
    expect(mine.statusCode).toBe(200);
    expect(mine.json<UserBody>().id).toBe(user.user.id);
  });
});

describe('GET /v1/admin/tasks', () => {
  const owners: SessionBody[] = [];
  const created = new Map<string, string>(); // task id -> owner id

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const s = await register(t.app);
      owners.push(s);
      for (let j = 0; j < 3; j++) created.set((await createTask(s, `task ${i}.${j}`)).id, s.user.id);
    }
  });

  it('is 403 for a user', async () => {
    expectProblem(await by(owners[0]!.accessToken)({ method: 'GET', url: '/v1/admin/tasks' }), 403);
    expectProblem(await call({ method: 'GET', url: '/v1/admin/tasks' }), 401);
  });

  it('lists tasks of several users, each with its owner', async () => {
    await t.deliverAccountEvents(); // the owners the tasks module knows come from the account events
    const res = await by(admin.accessToken)({ method: 'GET', url: '/v1/admin/tasks?limit=100' });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json<AdminTaskPageBody>();
    expect(page.data.length).toBe(await countTasks());
    const byId = new Map(page.data.map((x) => [x.id, x]));
    for (const [taskId, ownerId] of created) {
      const task = byId.get(taskId);
      expect(task, taskId).toBeDefined();
      const owner = owners.find((o) => o.user.id === ownerId)!;
      expect(task!.owner).toEqual({ id: owner.user.id, email: owner.user.email, role: 'user' });
    }
    expect(new Set(page.data.map((x) => x.owner.id)).size).toBeGreaterThanOrEqual(3);
    // Newest first.
    const times = page.data.map((x) => Date.parse(x.createdAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('filters by ?userId=', async () => {
    const target = owners[1]!;
    const res = await by(admin.accessToken)({ method: 'GET', url: `/v1/admin/tasks?limit=100&userId=${target.user.id}` });
    expect(res.statusCode).toBe(200);
    const page = res.json<AdminTaskPageBody>();
    expect(page.data).toHaveLength(3);
    for (const x of page.data) expect(x.owner.id).toBe(target.user.id);
    expect(page.data.map((x) => x.id).sort()).toEqual([...created].filter(([, o]) => o === target.user.id).map(([id]) => id).sort());

    const none = (await by(admin.accessToken)({ method: 'GET', url: `/v1/admin/tasks?userId=${missingId}` })).json<AdminTaskPageBody>();
    expect(none).toEqual({ data: [], nextCursor: null });
    expectProblem(await by(admin.accessToken)({ method: 'GET', url: '/v1/admin/tasks?userId=nope' }), 400);
  });

  it('paginates by nextCursor without duplicates or gaps', async () => {
    const req = by(admin.accessToken);
    const walk = async (filter: string) => {
      const ids: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 100; pages++) {
        const url: string = `/v1/admin/tasks?limit=2${filter}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const res = await req({ method: 'GET', url });
        expect(res.statusCode, res.body).toBe(200);
        const page = res.json<AdminTaskPageBody>();
        expect(page.data.length).toBeLessThanOrEqual(2);
        ids.push(...page.data.map((x) => x.id));
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      expect(cursor).toBeNull();
      return ids;
    };
    const all = await walk('');
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBe(await countTasks());
    const oneUser = await walk(`&userId=${owners[2]!.user.id}`);
    expect(oneUser.sort()).toEqual([...created].filter(([, o]) => o === owners[2]!.user.id).map(([id]) => id).sort());

    expectProblem(await req({ method: 'GET', url: '/v1/admin/tasks?cursor=bogus' }), 400);
  });
});
