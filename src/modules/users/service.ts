// Profiles and admin user management. Access is decided here, whatever the route says.
import type { Actor, Role } from '../../shared/actor.js';
import { decodeIdCursor, encodeIdCursor, pageOf, type Page } from '../../shared/cursor.js';
import { accountGone, badRequest, conflict, forbidden, notFound } from '../../shared/errors.js';
import { hashPassword, verifyPassword } from '../../infra/passwords.js';
import type { User, UserChanges } from './contract.js';
import type { UsersRepository } from './repository.js';

export interface ProfileUpdate {
  name?: string | null;
  password?: string;
  currentPassword?: string;
}

export interface AdminUserUpdate {
  name?: string | null;
  role?: Role;
}

/** Ends every session of a user (implemented by the auth module's token store). */
export type RevokeSessions = (userId: string) => Promise<void>;

export class UsersService {
  constructor(
    private readonly repo: UsersRepository,
    private readonly revokeSessions: RevokeSessions,
    /** Told after a user's data changed or went away (the response cache retires it). */
    private readonly dataChanged: (userId: string) => Promise<void>,
  ) {}

  async me(actor: Actor): Promise<User> {
    return (await this.repo.findById(actor.userId)) ?? this.gone();
  }

  async updateMe(actor: Actor, input: ProfileUpdate): Promise<User> {
    const changes: UserChanges = {};
    if (input.name !== undefined) changes.name = input.name;
    if (input.password !== undefined) {
      if (input.currentPassword === undefined) {
        throw badRequest('currentPassword is required to change the password', [
          { in: 'body', field: 'currentPassword', message: 'required when password is set' },
        ]);
      }
      const creds = (await this.repo.findCredentialsById(actor.userId)) ?? this.gone();
      if (!(await verifyPassword(creds.passwordHash, input.currentPassword))) {
        throw badRequest('currentPassword is wrong', [{ in: 'body', field: 'currentPassword', message: 'does not match' }]);
      }
      changes.passwordHash = await hashPassword(input.password);
    } else if (input.currentPassword !== undefined) {
      throw badRequest('currentPassword is only accepted with password', [
        { in: 'body', field: 'currentPassword', message: 'only allowed together with password' },
      ]);
    }
    const user = (await this.repo.update(actor.userId, changes)) ?? this.gone();
    if (changes.passwordHash) await this.revokeSessions(actor.userId);
    return user;
  }

  async deleteMe(actor: Actor): Promise<void> {
    if (!(await this.deleteGuarded(actor.userId))) this.gone();
  }

  async list(actor: Actor, limit: number, cursor: string | undefined): Promise<Page<User>> {
    await this.requireAdmin(actor);
    const after = cursor === undefined ? undefined : decodeIdCursor(cursor, 'users');
    const rows = await this.repo.list(limit + 1, after);
    return pageOf(rows, limit, (last) => encodeIdCursor('users', last));
  }

  async get(actor: Actor, id: string): Promise<User> {
    await this.requireAdmin(actor);
    return (await this.repo.findById(id)) ?? notFoundUser();
  }

  async update(actor: Actor, id: string, input: AdminUserUpdate): Promise<User> {
    await this.requireAdmin(actor);
    const changes: UserChanges = {};
    if (input.name !== undefined) changes.name = input.name;
    if (input.role !== undefined) changes.role = input.role;
    if (input.role !== 'user') return this.updated(id, (await this.repo.update(id, changes)) ?? notFoundUser());
    const user = await this.repo.withAdminGuard(async (repo, admins) => {
      const target = (await repo.findById(id)) ?? notFoundUser();
      if (target.role === 'admin' && admins <= 1) throw conflict('The last admin cannot be demoted', 'last-admin');
      return (await repo.update(id, changes)) ?? notFoundUser();
    });
    return this.updated(id, user);
  }

  private async updated(id: string, user: User): Promise<User> {
    await this.dataChanged(id);
    return user;
  }

  async delete(actor: Actor, id: string): Promise<void> {
    await this.requireAdmin(actor);
    if (!(await this.deleteGuarded(id))) notFoundUser();
  }

  private async deleteGuarded(id: string): Promise<boolean> {
    const deleted = await this.repo.withAdminGuard(async (repo, admins) => {
      const target = await repo.findById(id);
      if (!target) return false;
      if (target.role === 'admin' && admins <= 1) throw conflict('The last admin cannot be deleted', 'last-admin');
      return repo.delete(id);
    });
    if (deleted) {
      await this.revokeSessions(id);
      await this.dataChanged(id);
    }
    return deleted;
  }

  /** An admin's token whose account still exists: an admin deleted meanwhile administers nothing. */
  private async requireAdmin(actor: Actor): Promise<void> {
    if (actor.role !== 'admin') throw forbidden('Admin role required');
    if (!(await this.repo.findById(actor.userId))) this.gone();
  }

  /** The token is valid but its user no longer exists. */
  private gone(): never {
    throw accountGone();
  }
}

function notFoundUser(): never {
  throw notFound('User');
}

