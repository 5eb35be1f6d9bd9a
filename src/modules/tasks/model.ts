// The task as the tasks module sees it, and the shapes of its writes and list filters.
import type { Role } from '../../shared/actor.js';
import type { TaskPriority, TaskStatus } from '../../shared/task-model.js';

export type { TaskPriority as Priority, TaskStatus as Status } from '../../shared/task-model.js';

/** What a client decides about a task (the rest the server keeps). */
export interface NewTask {
  id: string;
  title: string;
  description: string | null;
  status: TaskStatus;
  priority: TaskPriority;
  dueAt: Date | null;
  tags: string[];
}

export interface Task extends NewTask {
  createdAt: Date;
  updatedAt: Date;
  /** Set when the status becomes done, cleared when it leaves done. */
  completedAt: Date | null;
  /** Grows with every change; the ETag. */
  version: number;
}

export type TaskChanges = Partial<Omit<NewTask, 'id'>>;

export interface TaskFilter {
  statuses?: TaskStatus[];
  priorities?: TaskPriority[];
  tag?: string;
  dueBefore?: Date;
  dueAfter?: Date;
  q?: string;
}

/** A task in the admin's list, with the account it belongs to. */
/** The owner shown beside a task in the admin's list (the module's copy of the account). */
export interface Owner {
  id: string;
  email: string;
  role: Role;
}

/** A task in the admin's list; owner's email and role are null until the account's user.created arrives. */
export interface OwnedTask extends Task {
  owner: Owner | { id: string; email: null; role: null };
}
