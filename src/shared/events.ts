// The task event contract, shared by the publishing side (outbox, relay, broker) and the
// consumers (notifications). Versioned: a consumer ignores nothing silently — an event whose
// schemaVersion it does not know goes to the dead-letter queue.

export const EVENT_SCHEMA_VERSION = 1 as const;

export const TASK_EVENT_TYPES = ['task.created', 'task.updated', 'task.completed', 'task.deleted'] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

/** The task as it stands after the change (for task.deleted: as it stood when deleted). */
export interface TaskSnapshot {
  id: string;
  title: string;
  description: string | null;
  status: 'todo' | 'in_progress' | 'done';
  priority: 'low' | 'medium' | 'high' | 'urgent';
  dueAt: string | null;
  tags: string[];
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
  version: number;
}

export interface TaskEvent {
  /** UUIDv7; also the AMQP messageId, and the consumers' idempotency key. */
  id: string;
  type: TaskEventType;
  schemaVersion: typeof EVENT_SCHEMA_VERSION;
  /** RFC 3339, when the change was committed. */
  occurredAt: string;
  userId: string;
  taskId: string;
  data: {
    task: TaskSnapshot;
    /** For task.updated and task.completed: the fields the write changed. */
    changes?: string[];
  };
  /** W3C trace context of the request that made the change, when tracing is on. */
  traceContext?: { traceparent: string; tracestate?: string };
}

/** A consumer's effect for one event. Must be idempotent by event id (processed_events). */
export type TaskEventHandler = (event: TaskEvent) => Promise<void>;
