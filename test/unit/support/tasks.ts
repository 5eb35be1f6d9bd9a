// Task objects for unit tests: a complete Task as the repository returns it, with overrides.
import type { Task } from '../../../src/modules/tasks/model.js';

let n = 0;

/** A UUID that differs per call and sorts in call order (like UUIDv7 ids do). */
export function testId(): string {
  n++;
  return `0192f7a0-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;
}

export function makeTask(overrides: Partial<Task> = {}): Task {
  const at = new Date('2024-03-01T10:00:00.000Z');
  return {
    id: testId(),
    title: 'Write the report',
    description: null,
    status: 'todo',
    priority: 'medium',
    dueAt: null,
    tags: [],
    createdAt: at,
    updatedAt: at,
    completedAt: null,
    version: 1,
    ...overrides,
  };
}
