// Profiles and admin user management (src/modules/users/service.ts) over an in-memory repository.
// Passwords are real argon2id hashes (src/infra/passwords.ts): one made up front, a few verified.
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../../src/infra/passwords.js';
import type { User, UserChanges, UserCredentials } from '../../src/modules/users/contract.js';
import type { UsersRepository } from '../../src/modules/users/repository.js';
import { UsersService } from '../../src/modules/users/service.js';
import type { Actor } from '../../src/shared/actor.js';
import { encodeCursor } from '../../src/shared/cursor.js';
import { rejection } from './support/errors.js';

type UsersRepositoryPort = Pick<UsersRepository, 'findById' | 'findCredentialsById' | 'update' | 'delete' | 'list' | 'withAdminGuard'>;

const publicOf = ({ passwordHash: _hash, ...user }: UserCredentials): User => user;

/** The UsersRepository methods UsersService calls, over a map; records writes. */
class FakeUsersRepository implements UsersRepositoryPort {
  readonly users = new Map<string, UserCredentials>();
  readonly updates: { id: string; changes: UserChanges }[] = [];
  readonly deleted: string[] = [];
  guards = 0;

  add(id: string, role: User['role'], passwordHash = 'unused'): User {
    const at = new Date('2024-01-01T00:00:00.000Z');
    const u: UserCredentials = { id, email: `${id.slice(-4)}@example.com`, role, name: null, createdAt: at, updatedAt: at, passwordHash };
    this.users.set(id, u);
    return publicOf(u);
  }

  async findById(id: string): Promise<User | undefined> {
    const u = this.users.get(id);
    return u && publicOf(u);
  }

  async findCredentialsById(id: string): Promise<UserCredentials | undefined> {
    return this.users.get(id);
  }

  async update(id: string, changes: UserChanges): Promise<User | undefined> {
    this.updates.push({ id, changes });
    const u = this.users.get(id);
    if (!u) return undefined;
    const next = { ...u, ...changes, updatedAt: new Date() };
    this.users.set(id, next);
    return publicOf(next);
  }

  async delete(id: string): Promise<boolean> {
    this.deleted.push(id);
    return this.users.delete(id);
  }

  async list(limit: number, afterId: string | undefined): Promise<User[]> {
    return [...this.users.values()]
      .filter((u) => afterId === undefined || u.id > afterId)
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .slice(0, limit)
      .map(publicOf);
  }

  async withAdminGuard<T>(fn: (repo: UsersRepository, admins: number) => Promise<T>): Promise<T> {
    this.guards++;
    const admins = [...this.users.values()].filter((u) => u.role === 'admin').length;
    return fn(this as unknown as UsersRepository, admins);
  }
}

const ALICE = '0192f7a0-0000-7000-8000-00000000a11c';
const BOB = '0192f7a0-0000-7000-8000-000000000b0b';
const ROOT = '0192f7a0-0000-7000-8000-0000000ad000';
const alice: Actor = { userId: ALICE, role: 'user' };
const root: Actor = { userId: ROOT, role: 'admin' };
const OLD_PASSWORD = 'correct horse battery';

let oldHash: string;
let repo: FakeUsersRepository;
/** What the service told its collaborators, in order. */
let told: string[];
let service: UsersService;

beforeAll(async () => {
  oldHash = await hashPassword(OLD_PASSWORD);
});

beforeEach(() => {
  repo = new FakeUsersRepository();
  repo.add(ALICE, 'user', oldHash);
  repo.add(BOB, 'user');
  repo.add(ROOT, 'admin');
  told = [];
  service = new UsersService(
    repo as unknown as UsersRepository,
    async (id) => void told.push(`revoke ${id}`),
    async (id) => void told.push(`changed ${id}`),
  );
});

describe('me', () => {
  it('returns the profile without the password hash', async () => {
    const me = await service.me(alice);
    expect(me.id).toBe(ALICE);
    expect(me).not.toHaveProperty('passwordHash');
  });

  it("a valid token whose account is gone: 401 'account-gone'", async () => {
    repo.users.delete(ALICE);
    expect(await rejection(service.me(alice))).toMatchObject({ status: 401, code: 'account-gone' });
    expect(await rejection(service.updateMe(alice, { name: 'A' }))).toMatchObject({ status: 401, code: 'account-gone' });
  });
});

describe('updateMe', () => {
  it('a name change touches only the name and ends no session', async () => {
    const me = await service.updateMe(alice, { name: 'Alice' });
    expect(me.name).toBe('Alice');
    expect(repo.updates).toEqual([{ id: ALICE, changes: { name: 'Alice' } }]);
    expect(told).not.toContain(`revoke ${ALICE}`);
    await service.updateMe(alice, { name: null });
    expect(repo.updates[1]).toEqual({ id: ALICE, changes: { name: null } });
  });

  it('a new password without currentPassword: 400 naming currentPassword, nothing changed', async () => {
    const err = await rejection(service.updateMe(alice, { password: 'a new password' }));
    expect(err.status).toBe(400);
    expect(err.errors).toEqual([{ in: 'body', field: 'currentPassword', message: expect.any(String) }]);
    expect(repo.updates).toEqual([]);
    expect(told).toEqual([]);
  });

  it('currentPassword without a new password: 400 naming currentPassword', async () => {
    const err = await rejection(service.updateMe(alice, { name: 'A', currentPassword: OLD_PASSWORD }));
    expect(err.status).toBe(400);
    expect(err.errors?.map((e) => [e.in, e.field])).toEqual([['body', 'currentPassword']]);
    expect(repo.updates).toEqual([]);
  });

  it('a wrong current password: 400 naming currentPassword; the old password still works, sessions stay', async () => {
    const err = await rejection(service.updateMe(alice, { password: 'a new password', currentPassword: 'not the password' }));
    expect(err.status).toBe(400);
    expect(err.errors).toEqual([{ in: 'body', field: 'currentPassword', message: 'does not match' }]);
    expect(repo.updates).toEqual([]);
    expect(repo.users.get(ALICE)!.passwordHash).toBe(oldHash);
    expect(told).toEqual([]);
  });

  it('the right current password: stores a hash of the new one, then ends every session', async () => {
    const me = await service.updateMe(alice, { password: 'a new password', currentPassword: OLD_PASSWORD });
    expect(me).not.toHaveProperty('passwordHash');
    const stored = repo.users.get(ALICE)!.passwordHash;
    expect(stored).not.toBe(oldHash);
    expect(stored).toMatch(/^\$argon2id\$/);
    expect(await verifyPassword(stored, 'a new password')).toBe(true);
    expect(repo.updates).toHaveLength(1);
    expect(Object.keys(repo.updates[0]!.changes)).toEqual(['passwordHash']);
    expect(told).toEqual([`revoke ${ALICE}`]);
  });
});

describe('admin methods refuse a non-admin with 403, touching nothing', () => {
  it.each([
    ['list', () => service.list(alice, 20, undefined)],
    ['get', () => service.get(alice, BOB)],
    ['update', () => service.update(alice, BOB, { role: 'admin' })],
    ['update (own role)', () => service.update(alice, ALICE, { role: 'admin' })],
    ['delete', () => service.delete(alice, BOB)],
  ] as const)('%s', async (_name, call) => {
    expect(await rejection(call())).toMatchObject({ status: 403, code: 'forbidden' });
    expect(repo.updates).toEqual([]);
    expect(repo.deleted).toEqual([]);
    expect(repo.users.get(ALICE)!.role).toBe('user');
    expect(told).toEqual([]);
  });
});

describe('admin: list and get', () => {
  it('lists by id with an id cursor, and a next cursor only while there is more', async () => {
    const first = await service.list(root, 2, undefined);
    expect(first.data.map((u) => u.id)).toEqual([BOB, ALICE]);
    expect(first.nextCursor).not.toBeNull();
    const second = await service.list(root, 2, first.nextCursor!);
    expect(second.data.map((u) => u.id)).toEqual([ROOT]);
    expect(second.nextCursor).toBeNull();
  });

  it('a bad cursor, or one from another list, is a 400 naming cursor', async () => {
    for (const cursor of ['garbage', encodeCursor('users', ['not-a-uuid']), encodeCursor('webhooks', [BOB])]) {
      const err = await rejection(service.list(root, 2, cursor));
      expect(err.status, cursor).toBe(400);
      expect(err.errors?.map((e) => e.field)).toEqual(['cursor']);
    }
  });

  it('get: the user, or 404', async () => {
    await expect(service.get(root, BOB)).resolves.toMatchObject({ id: BOB, role: 'user' });
    expect(await rejection(service.get(root, '0192f7a0-0000-7000-8000-00000000dead'))).toMatchObject({ status: 404, code: 'not-found' });
  });
});

describe('admin: update', () => {
  it('changes name or role and tells the cache about that user', async () => {
    await expect(service.update(root, BOB, { name: 'Bob', role: 'admin' })).resolves.toMatchObject({ name: 'Bob', role: 'admin' });
    expect(told).toEqual([`changed ${BOB}`]);
  });

  it('demoting an admin while another remains is allowed', async () => {
    repo.add(BOB, 'admin');
    await expect(service.update(root, BOB, { role: 'user' })).resolves.toMatchObject({ role: 'user' });
    expect(repo.guards).toBe(1);
  });

  it("demoting the last admin is a 409 'last-admin', even oneself", async () => {
    expect(await rejection(service.update(root, ROOT, { role: 'user' }))).toMatchObject({ status: 409, code: 'last-admin' });
    expect(repo.users.get(ROOT)!.role).toBe('admin');
    expect(told).toEqual([]);
  });

  it('a missing user: 404', async () => {
    const ghost = '0192f7a0-0000-7000-8000-00000000dead';
    expect((await rejection(service.update(root, ghost, { name: 'x' }))).status).toBe(404);
    expect((await rejection(service.update(root, ghost, { role: 'user' }))).status).toBe(404);
    expect(told).toEqual([]);
  });
});

describe('delete', () => {
  it('an admin deletes a user: sessions ended, cache told', async () => {
    await service.delete(root, BOB);
    expect(repo.users.has(BOB)).toBe(false);
    expect(told).toEqual([`revoke ${BOB}`, `changed ${BOB}`]);
  });

  it('a missing user: 404, nothing told', async () => {
    expect((await rejection(service.delete(root, '0192f7a0-0000-7000-8000-00000000dead'))).status).toBe(404);
    expect(told).toEqual([]);
  });

  it("the last admin cannot be deleted, by an admin or by themselves: 409 'last-admin'", async () => {
    expect(await rejection(service.delete(root, ROOT))).toMatchObject({ status: 409, code: 'last-admin' });
    expect(await rejection(service.deleteMe(root))).toMatchObject({ status: 409, code: 'last-admin' });
    expect(repo.users.has(ROOT)).toBe(true);
    expect(told).toEqual([]);
  });

  it('a user deletes their own account: sessions ended, cache told', async () => {
    await service.deleteMe(alice);
    expect(repo.users.has(ALICE)).toBe(false);
    expect(told).toEqual([`revoke ${ALICE}`, `changed ${ALICE}`]);
  });

  it("deleting one's account again with the same token: 401 'account-gone', nothing told", async () => {
    await service.deleteMe(alice);
    told = [];
    expect(await rejection(service.deleteMe(alice))).toMatchObject({ status: 401, code: 'account-gone' });
    expect(told).toEqual([]);
  });
});

describe("an admin whose account is gone: 401 'account-gone', touching nothing", () => {
  it.each([
    ['list', () => service.list(root, 20, undefined)],
    ['get', () => service.get(root, BOB)],
    ['update', () => service.update(root, BOB, { role: 'admin' })],
    ['delete', () => service.delete(root, BOB)],
  ] as const)('%s', async (_name, call) => {
    repo.add(BOB, 'admin'); // another admin remains, so nothing but the account decides
    repo.users.delete(ROOT);
    expect(await rejection(call())).toMatchObject({ status: 401, code: 'account-gone' });
    expect(repo.updates).toEqual([]);
    expect(repo.deleted).toEqual([]);
    expect(repo.users.has(BOB)).toBe(true);
    expect(told).toEqual([]);
  });
});
