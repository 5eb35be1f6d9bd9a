// Builds the account events (src/shared/events.ts UserEvent) of a users write. The repository
// appends them to the outbox in the write's transaction; the other services keep their copies of
// the account by them, and delete what they hold of it on user.deleted.
import { activeTraceContext } from '../../observability/trace-context.js';
import { EVENT_SCHEMA_VERSION, type AccountSnapshot, type UserEvent, type UserEventType } from '../../shared/events.js';
import { uuidv7 } from '../../shared/ids.js';
import type { User } from './contract.js';

export function accountSnapshot(u: User): AccountSnapshot {
  return { id: u.id, email: u.email, role: u.role, name: u.name, createdAt: u.createdAt.toISOString(), updatedAt: u.updatedAt.toISOString() };
}

export function userEvent(type: UserEventType, user: User, changes?: string[]): UserEvent {
  const traceContext = activeTraceContext();
  return {
    id: uuidv7(),
    type,
    schemaVersion: EVENT_SCHEMA_VERSION,
    occurredAt: new Date().toISOString(),
    userId: user.id,
    data: changes === undefined ? { user: accountSnapshot(user) } : { user: accountSnapshot(user), changes },
    ...(traceContext ? { traceContext } : {}),
  };
}
