// The first admin: from ADMIN_EMAIL/ADMIN_PASSWORD at start, or `task-api create-admin`.
import type { FastifyBaseLogger } from 'fastify';
import type { Database } from '../infra/db/database.js';
import { hashPassword } from '../infra/passwords.js';
import { normaliseEmail } from '../shared/email.js';
import { UsersRepository } from '../modules/users/repository.js';
import { uuidv7 } from '../shared/ids.js';

/** Creates the admin, or promotes an existing account with that email. Idempotent. */
export async function ensureAdmin(
  database: Database,
  admin: { email: string; password: string },
  log: Pick<FastifyBaseLogger, 'info'>,
): Promise<'created' | 'promoted' | 'unchanged'> {
  const repo = new UsersRepository(database.db);
  const email = normaliseEmail(admin.email);
  const existing = await repo.findCredentialsByEmail(email);
  if (existing) {
    if (existing.role === 'admin') return 'unchanged';
    await repo.update(existing.id, { role: 'admin' });
    log.info({ userId: existing.id }, 'existing user promoted to admin');
    return 'promoted';
  }
  const user = await repo.insert({ id: uuidv7(), email, passwordHash: await hashPassword(admin.password), role: 'admin', name: 'Admin' });
  log.info({ userId: user.id }, 'admin created');
  return 'created';
}
