// Builds the TaskEvent (src/shared/events.ts) of a task write. The repository appends it to the
// outbox in the write's transaction.
import { activeTraceContext } from '../../observability/trace-context.js';
import { EVENT_SCHEMA_VERSION, type TaskEvent, type TaskEventType, type TaskSnapshot } from '../../shared/events.js';
import { uuidv7 } from '../../shared/ids.js';
import type { Task } from './model.js';

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export function snapshotOf(t: Task): TaskSnapshot {
  return {
    id: t.id,
    title: t.title,
    description: t.description,
    status: t.status,
    priority: t.priority,
    dueAt: iso(t.dueAt),
    tags: t.tags,
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
    completedAt: iso(t.completedAt),
    version: t.version,
  };
}

export function taskEvent(type: TaskEventType, userId: string, task: Task, occurredAt: Date, changes?: string[]): TaskEvent {
  const traceContext = activeTraceContext();
  return {
    id: uuidv7(),
    type,
    schemaVersion: EVENT_SCHEMA_VERSION,
    occurredAt: occurredAt.toISOString(),
    userId,
    taskId: task.id,
    data: changes === undefined ? { task: snapshotOf(task) } : { task: snapshotOf(task), changes },
    ...(traceContext ? { traceContext } : {}),
  };
}
