// The only code that reads or writes the users table.
import { asc, count, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Db } from '../../infra/db/database.js';
import type { Accounts, NewUser, Owner, User, UserChanges, UserCredentials } from './contract.js';
import { users } from './table.js';

const publicColumns = {
  id: users.id,
  email: users.email,
  role: users.role,
  name: users.name,
  createdAt: users.createdAt,
  updatedAt: users.updatedAt,
};

export class UsersRepository implements Accounts {
  constructor(private readonly db: Db) {}

  async insert(u: NewUser): Promise<User> {
    const now = new Date();
    const [row] = await this.db
      .insert(users)
      .values({ ...u, createdAt: now, updatedAt: now })
      .returning(publicColumns);
    return row!;
  }

  async findById(id: string): Promise<User | undefined> {
    const [row] = await this.db.select(publicColumns).from(users).where(eq(users.id, id));
    return row;
  }

  async findCredentialsByEmail(email: string): Promise<UserCredentials | undefined> {
    const [row] = await this.db.select().from(users).where(eq(users.email, email));
    return row;
  }

  async findCredentialsById(id: string): Promise<UserCredentials | undefined> {
    const [row] = await this.db.select().from(users).where(eq(users.id, id));
    return row;
  }

  async update(id: string, changes: UserChanges): Promise<User | undefined> {
    const [row] = await this.db
      .update(users)
      .set({ ...changes, updatedAt: sql`greatest(now(), ${users.updatedAt} + interval '1 millisecond')` })
      .where(eq(users.id, id))
      .returning(publicColumns);
    return row;
  }

  /** Deletes the user; their tasks go with them (ON DELETE CASCADE). */
  async delete(id: string): Promise<boolean> {
    const rows = await this.db.delete(users).where(eq(users.id, id)).returning({ id: users.id });
    return rows.length > 0;
  }

  async list(limit: number, afterId: string | undefined): Promise<User[]> {
    return this.db
      .select(publicColumns)
      .from(users)
      .where(afterId ? gt(users.id, afterId) : undefined)
      .orderBy(asc(users.id))
      .limit(limit);
  }

  /**
   * Applies a change that could remove an admin (demotion or deletion) only if another admin
   * remains. The admin rows are locked, so two such changes at once cannot both pass.
   */
  async withAdminGuard<T>(fn: (repo: UsersRepository, admins: number) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      const admins = await tx.select({ id: users.id }).from(users).where(eq(users.role, 'admin')).for('update');
      return fn(new UsersRepository(tx), admins.length);
    });
  }

  async owners(ids: string[]): Promise<Map<string, Owner>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.select({ id: users.id, email: users.email, role: users.role }).from(users).where(inArray(users.id, ids));
    return new Map(rows.map((r) => [r.id, r]));
  }

  async countAdmins(): Promise<number> {
    const [row] = await this.db.select({ n: count() }).from(users).where(eq(users.role, 'admin'));
    return row?.n ?? 0;
  }
}
