// Task events built per the contract (src/shared/events.ts), for consumer tests.
import type { DomainEvent, TaskEvent, TaskEventType } from '../../src/shared/events.js';
import { uuidv7 } from '../../src/shared/ids.js';

export function taskEvent(userId: string, type: TaskEventType = 'task.created', title = 'Write the report'): TaskEvent {
  const now = new Date().toISOString();
  const taskId = uuidv7();
  return {
    id: uuidv7(),
    type,
    schemaVersion: 1,
    occurredAt: now,
    userId,
    taskId,
    data: {
      task: {
        id: taskId,
        title,
        description: null,
        status: type === 'task.completed' ? 'done' : 'todo',
        priority: 'medium',
        dueAt: null,
        tags: [],
        createdAt: now,
        updatedAt: now,
        completedAt: type === 'task.completed' ? now : null,
        version: 1,
      },
      ...(type === 'task.updated' || type === 'task.completed' ? { changes: ['status'] } : {}),
    },
  };
}

/** The task event a test's consumer expects (the bus carries account events too). */
export function taskOf(e: DomainEvent): TaskEvent {
  if (!('taskId' in e)) throw new Error(`not a task event: ${e.type}`);
  return e;
}
