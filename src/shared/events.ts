// The task event contract, shared by the publishing side (tasks module, outbox, relay, broker) and
// the consumers (notifications). One TypeBox schema gives both the static type the producer builds
// and the check a consumer runs on what arrives. Versioned: a consumer ignores nothing silently —
// an event whose schemaVersion it does not know is poison (dead-lettered, not retried).
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { parseDateTime } from './date-time.js';
import { UUID_PATTERN } from './ids.js';
import { PoisonMessageError } from './poison.js';
import { TASK_PRIORITIES, TASK_STATUSES } from './task-model.js';
import { ROLES } from './actor.js';

export const EVENT_SCHEMA_VERSION = 1 as const;

export const TASK_EVENT_TYPES = ['task.created', 'task.updated', 'task.completed', 'task.deleted'] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

const Uuid = Type.String({ pattern: UUID_PATTERN });

/** The subset of RFC 3339 (section 5.6) whose instant a Date holds exactly: 'T', at most 3 fraction digits, Z or ±hh:mm. */
const INSTANT = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/**
 * An RFC 3339 date-time that names one instant and round-trips through a Date: a real calendar
 * date (no February 30, which Date.parse rolls over into March), no leap second, at most
 * millisecond precision (the database's), a Z or ±hh:mm offset, years 0001 to 9999 (the calendar
 * and range checks are parseDateTime's, the API's own). The producer writes toISOString(),
 * which always is one.
 */
export function isInstant(value: string): boolean {
  return INSTANT.test(value) && parseDateTime(value) !== undefined;
}

/** RFC 3339 as the producer writes it (toISOString): see isInstant. */
const Instant = Type.Refine(Type.String(), isInstant, () => 'must be an RFC 3339 date-time (a real date, at most millisecond precision)');
const OrNull = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** W3C trace context of the request that made the change, when tracing is on. */
const TraceContext = Type.Optional(Type.Object({ traceparent: Type.String(), tracestate: Type.Optional(Type.String()) }));

/** What every event has, whatever its type (the task and the account events). */
const envelope = {
  /** UUIDv7; also the AMQP messageId, and the consumers' idempotency key. */
  id: Uuid,
  schemaVersion: Type.Literal(EVENT_SCHEMA_VERSION),
  /** When the change was committed. */
  occurredAt: Instant,
  userId: Uuid,
  /** W3C trace context of the request that made the change, when tracing is on. */
  traceContext: TraceContext,
};

/** The task as it stands after the change (for task.deleted: as it stood when deleted). */
export const TaskSnapshotSchema = Type.Object({
  id: Uuid,
  title: Type.String(),
  description: OrNull(Type.String()),
  status: Type.Enum(TASK_STATUSES),
  priority: Type.Enum(TASK_PRIORITIES),
  dueAt: OrNull(Instant),
  tags: Type.Array(Type.String()),
  createdAt: Instant,
  updatedAt: Instant,
  completedAt: OrNull(Instant),
  version: Type.Integer(),
});
export type TaskSnapshot = Static<typeof TaskSnapshotSchema>;

/**
 * Version 1. Unknown extra properties are tolerated (additive changes do not bump the version);
 * missing or mistyped ones make the event poison.
 */
export const TaskEventSchema = Type.Object({
  ...envelope,
  type: Type.Enum(TASK_EVENT_TYPES),
  taskId: Uuid,
  data: Type.Object({
    task: TaskSnapshotSchema,
    /** For task.updated and task.completed: the fields the write changed. */
    changes: Type.Optional(Type.Array(Type.String())),
  }),
});
export type TaskEvent = Static<typeof TaskEventSchema>;

/**
 * Checks an incoming message against an event schema (`kind` names it in the error): a
 * PoisonMessageError when no retry could help (not an object, an unknown schemaVersion, a field
 * missing or mistyped).
 */
function parseEvent<S extends typeof TaskEventSchema | typeof UserEventSchema>(schema: S, kind: string, message: unknown): Static<S> {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    throw new PoisonMessageError(`${kind} event is not an object`, 'malformed');
  }
  const version = (message as { schemaVersion?: unknown }).schemaVersion;
  if (version !== EVENT_SCHEMA_VERSION) {
    throw new PoisonMessageError(`unknown ${kind} event schemaVersion ${JSON.stringify(version)}`, 'unknown-schema-version');
  }
  if (!Value.Check(schema, message)) {
    const first = Value.Errors(schema, message)[0];
    throw new PoisonMessageError(`malformed ${kind} event: ${first ? `${first.instancePath || '/'} ${first.message}` : 'invalid'}`, 'malformed');
  }
  return message;
}

/** Checks an incoming task event against the contract; PoisonMessageError when no retry could help. */
export const parseTaskEvent = (message: unknown): TaskEvent => parseEvent(TaskEventSchema, 'task', message);

// ---------------------------------------------------------------------------------------------
// Account events, from the users module (which owns the accounts): what the other services keep
// of an account (tasks: the owner shown in the admin's list; notifications: the recipient's
// address) arrives by these, and user.deleted makes each of them delete what it holds of the
// account. Same envelope and versioning as the task events.

export const USER_EVENT_TYPES = ['user.created', 'user.updated', 'user.deleted'] as const;
export type UserEventType = (typeof USER_EVENT_TYPES)[number];

/** The account as it stands after the change (for user.deleted: as it stood). No credentials. */
export const AccountSnapshotSchema = Type.Object({
  id: Uuid,
  email: Type.String(),
  role: Type.Enum(ROLES),
  name: OrNull(Type.String()),
  createdAt: Instant,
  /** Orders the changes of one account: a copy applies an event only if it is not older. */
  updatedAt: Instant,
});
export type AccountSnapshot = Static<typeof AccountSnapshotSchema>;

export const UserEventSchema = Type.Object({
  ...envelope,
  type: Type.Enum(USER_EVENT_TYPES),
  data: Type.Object({
    user: AccountSnapshotSchema,
    /** For user.updated: the fields the write changed. */
    changes: Type.Optional(Type.Array(Type.String())),
  }),
});
export type UserEvent = Static<typeof UserEventSchema>;

/** Every event the outbox, the relay and the bus carry. */
export type DomainEvent = TaskEvent | UserEvent;
export type DomainEventType = DomainEvent['type'];
/** A consumer's effect for one event: idempotent (delivery is at least once). */
export type EventHandler = (event: DomainEvent) => Promise<void>;

/** Whether a message names an account event type (checked against the contract by parseUserEvent). */
export const isUserEvent = (e: unknown): e is UserEvent =>
  typeof e === 'object' && e !== null && (USER_EVENT_TYPES as readonly unknown[]).includes((e as { type?: unknown }).type);

/** Checks an incoming account event against the contract; PoisonMessageError when no retry could help. */
export const parseUserEvent = (message: unknown): UserEvent => parseEvent(UserEventSchema, 'user', message);

/** The aggregate an event's outbox row names: the task, or the account. */
export const aggregateIdOf = (e: DomainEvent): string => ('taskId' in e ? e.taskId : e.userId);
