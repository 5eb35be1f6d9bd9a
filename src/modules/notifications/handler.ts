// The consumer entry point: handle(event) is a TaskEventHandler (src/shared/events.ts). Each event
// takes effect once, however often it is delivered: its id goes into processed_events in the same
// transaction as its effects (in-app notification, webhook deliveries, email job).
import { Type } from 'typebox';
import { Value } from 'typebox/value';
import { EVENT_SCHEMA_VERSION, TASK_EVENT_TYPES, type TaskEvent, type TaskEventHandler } from '../../shared/events.js';
import { uuidv7 } from '../../shared/ids.js';
import { PoisonMessageError } from '../../shared/poison.js';
import { messageOf } from './messages.js';
import type { NotificationsRepository } from './repository.js';

export const CONSUMER = 'notifications';

const Uuid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' });
const Instant = Type.String({ minLength: 1 });
const TaskSnapshotSchema = Type.Object({
  id: Uuid,
  title: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  status: Type.Enum(['todo', 'in_progress', 'done']),
  priority: Type.Enum(['low', 'medium', 'high', 'urgent']),
  dueAt: Type.Union([Instant, Type.Null()]),
  tags: Type.Array(Type.String()),
  createdAt: Instant,
  updatedAt: Instant,
  completedAt: Type.Union([Instant, Type.Null()]),
  version: Type.Integer(),
});
// Version 1 as the contract declares it. Unknown extra properties are tolerated (additive
// changes do not bump the version); missing or mistyped ones make the event poison.
const TaskEventV1 = Type.Object({
  id: Uuid,
  type: Type.Enum(TASK_EVENT_TYPES),
  schemaVersion: Type.Literal(EVENT_SCHEMA_VERSION),
  occurredAt: Instant,
  userId: Uuid,
  taskId: Uuid,
  data: Type.Object({ task: TaskSnapshotSchema, changes: Type.Optional(Type.Array(Type.String())) }),
  traceContext: Type.Optional(Type.Object({ traceparent: Type.String(), tracestate: Type.Optional(Type.String()) })),
});

/** Checks an incoming message against the contract; PoisonMessageError when no retry could help. */
export function parseTaskEvent(message: unknown): TaskEvent {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    throw new PoisonMessageError('task event is not an object', 'malformed');
  }
  const version = (message as { schemaVersion?: unknown }).schemaVersion;
  if (version !== EVENT_SCHEMA_VERSION) {
    throw new PoisonMessageError(`unknown task event schemaVersion ${JSON.stringify(version)}`, 'unknown-schema-version');
  }
  if (!Value.Check(TaskEventV1, message)) {
    const first = Value.Errors(TaskEventV1, message)[0];
    throw new PoisonMessageError(`malformed task event: ${first ? `${first.instancePath || '/'} ${first.message}` : 'invalid'}`, 'malformed');
  }
  if (Number.isNaN(Date.parse(message.occurredAt))) throw new PoisonMessageError('malformed task event: /occurredAt is not a date', 'malformed');
  return message;
}

export interface HandlerDeps {
  repo: NotificationsRepository;
  /** The user's email address, or undefined when the account no longer exists. */
  recipientOf: (userId: string) => Promise<string | undefined>;
  /** Emails are only queued when SMTP is configured. */
  emailEnabled: boolean;
}

/** Builds the notifications consumer's TaskEventHandler. */
export function createNotificationsHandler(deps: HandlerDeps): TaskEventHandler {
  const { repo } = deps;
  return async function handle(message: TaskEvent): Promise<void> {
    const event = parseTaskEvent(message);
    // Read before the transaction (another module's data); an account deleted meanwhile makes
    // the inserts fail on their foreign key, and the redelivery then finds no account.
    const recipient = await deps.recipientOf(event.userId);
    await repo.transaction(async (tx) => {
      if (!(await tx.markProcessed(CONSUMER, event.id))) return; // already applied: a redelivery
      if (recipient === undefined) return; // the account is gone: nothing to notify
      const prefs = await tx.preferences(event.userId);
      const { title, body } = messageOf(event);
      if (prefs.inApp) {
        await tx.insertNotification({
          userId: event.userId,
          id: uuidv7(),
          eventId: event.id,
          taskId: event.taskId,
          type: event.type,
          title,
          body,
          createdAt: new Date(),
          readAt: null,
        });
      }
      if (prefs.webhooks) {
        const hooks = await tx.subscribedWebhooks(event.userId, event.type);
        const now = new Date();
        await tx.insertDeliveries(
          hooks.map((h) => ({ id: uuidv7(), webhookId: h.id, eventId: event.id, attempt: 1, payload: event, nextAttemptAt: now })),
        );
      }
      if (prefs.email && deps.emailEnabled) {
        await tx.insertEmail({ id: uuidv7(), userId: event.userId, eventId: event.id, recipient, subject: title, body });
      }
    });
  };
}
