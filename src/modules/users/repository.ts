// The only code that reads or writes the users table. Every change of an account appends its
// event (user.created / user.updated / user.deleted) to the outbox in the change's transaction:
// the other services learn of accounts only by these.
import { asc, count, eq, gt, sql } from 'drizzle-orm';
import { appendEvent } from '../../events/outbox.js';
import type { Db } from '../../infra/db/database.js';
import { userEvent } from './events.js';
import type { Accounts, NewUser, User, UserChanges, UserCredentials } from './contract.js';
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
  constructor(
    private readonly db: Db,
    /** Told after a change and its event committed (wakes the relay). */
    private readonly eventsWritten: () => void = () => undefined,
    /** Set when this repository runs inside a caller's transaction (withAdminGuard). */
    private readonly inTransaction = false,
  ) {}

  /** Runs `fn` in a transaction (the caller's, when inside one), then tells of the events written. */
  private async writing<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this.db);
    const out = await this.db.transaction(fn);
    this.eventsWritten();
    return out;
  }

  async insert(u: NewUser): Promise<User> {
    const now = new Date();
    return this.writing(async (tx) => {
      const [row] = await tx
        .insert(users)
        .values({ ...u, createdAt: now, updatedAt: now })
        .returning(publicColumns);
      await appendEvent(tx, 'user', userEvent('user.created', row!));
      return row!;
    });
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
    return this.writing(async (tx) => {
      const [row] = await tx
        .update(users)
        .set({ ...changes, updatedAt: sql`greatest(now(), ${users.updatedAt} + interval '1 millisecond')` })
        .where(eq(users.id, id))
        .returning(publicColumns);
      // The password hash is not in the event (no other service holds credentials); its change
      // is still an update of the account (updatedAt moves).
      if (row) await appendEvent(tx, 'user', userEvent('user.updated', row, Object.keys(changes).map((k) => (k === 'passwordHash' ? 'password' : k))));
      return row;
    });
  }

  /**
   * Deletes the account and appends user.deleted: its tasks, notifications and webhooks go with
   * it eventually, each service deleting its own on that event.
   */
  async delete(id: string): Promise<boolean> {
    return this.writing(async (tx) => {
      const [row] = await tx.delete(users).where(eq(users.id, id)).returning(publicColumns);
      if (row) await appendEvent(tx, 'user', userEvent('user.deleted', row));
      return row !== undefined;
    });
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
    const out = await this.db.transaction(async (tx) => {
      const admins = await tx.select({ id: users.id }).from(users).where(eq(users.role, 'admin')).for('update');
      return fn(new UsersRepository(tx, undefined, true), admins.length);
    });
    this.eventsWritten();
    return out;
  }

  async countAdmins(): Promise<number> {
    const [row] = await this.db.select({ n: count() }).from(users).where(eq(users.role, 'admin'));
    return row?.n ?? 0;
  }
}
