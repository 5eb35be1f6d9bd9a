// What a task event says to a person: the text of in-app notifications and emails.
import type { TaskEvent, TaskEventType } from '../../shared/events.js';

const VERB: Record<TaskEventType, string> = {
  'task.created': 'created',
  'task.updated': 'updated',
  'task.completed': 'completed',
  'task.deleted': 'deleted',
};

export function messageOf(event: TaskEvent): { title: string; body: string } {
  const task = event.data.task;
  const verb = VERB[event.type];
  const title = `Task ${verb}: ${task.title}`;
  const changes = event.data.changes?.length ? ` Changed: ${event.data.changes.join(', ')}.` : '';
  const body = `The task \u201c${task.title}\u201d was ${verb}.${changes}`;
  return { title, body };
}
