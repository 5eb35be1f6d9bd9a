import { Type, type Static } from 'typebox';
import { DateTime } from '../../http/datetime.js';
import { ROLES } from '../../shared/actor.js';
import { TASK_PRIORITIES, TASK_STATUSES } from '../../shared/task-model.js';
import { DEFAULT_SORT, SORT_PARAMS } from './sorts.js';

const Status = Type.Enum(TASK_STATUSES);
const Priority = Type.Enum(TASK_PRIORITIES);
const Title = Type.String({ minLength: 1, maxLength: 200, pattern: '\\S', description: 'Not blank' });
const Description = Type.Union([Type.String({ maxLength: 10000 }), Type.Null()]);
const DueAt = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);
const Tags = Type.Array(Type.String({ minLength: 1, maxLength: 50, pattern: '^\\S(.*\\S)?$' }), { maxItems: 20 });
const commaList = (values: readonly string[]) => `^(${values.join('|')})(,(${values.join('|')}))*$`;

export const Task = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    title: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    status: Status,
    priority: Priority,
    dueAt: Type.Union([DateTime, Type.Null()]),
    tags: Type.Array(Type.String()),
    createdAt: DateTime,
    updatedAt: DateTime,
    completedAt: Type.Union([DateTime, Type.Null()]),
    version: Type.Integer(),
  },
  { $id: 'Task', additionalProperties: false },
);

export const CreateTaskBody = Type.Object(
  {
    title: Title,
    description: Type.Optional(Description),
    status: Type.Optional(Status),
    priority: Type.Optional(Priority),
    dueAt: Type.Optional(DueAt),
    tags: Type.Optional(Tags),
  },
  { additionalProperties: false },
);
export type CreateTaskInput = Static<typeof CreateTaskBody>;

export const UpdateTaskBody = Type.Object(
  {
    title: Type.Optional(Title),
    description: Type.Optional(Description),
    status: Type.Optional(Status),
    priority: Type.Optional(Priority),
    dueAt: Type.Optional(DueAt),
    tags: Type.Optional(Tags),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateTaskInput = Static<typeof UpdateTaskBody>;

export const ListTasksQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    status: Type.Optional(Type.String({ pattern: commaList(TASK_STATUSES), description: 'Comma-separated statuses' })),
    priority: Type.Optional(Type.String({ pattern: commaList(TASK_PRIORITIES), description: 'Comma-separated priorities' })),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 50, description: 'Only tasks carrying this tag' })),
    dueBefore: Type.Optional(Type.String({ format: 'date-time', description: 'dueAt < dueBefore' })),
    dueAfter: Type.Optional(Type.String({ format: 'date-time', description: 'dueAt >= dueAfter' })),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Full-text search in title and description' })),
    sort: Type.Optional(Type.Enum(SORT_PARAMS, { default: DEFAULT_SORT })),
  },
  { additionalProperties: false },
);
export type ListTasksInput = Static<typeof ListTasksQuery>;

export const TaskPage = Type.Object(
  { data: Type.Array(Task), nextCursor: Type.Union([Type.String(), Type.Null()]) },
  { additionalProperties: false },
);

/**
 * The tasks service's copy of the account (kept by the account events): email and role are null
 * for an account whose user.created has not reached it yet (normally a matter of milliseconds).
 */
export const TaskOwner = Type.Object(
  { id: Type.String({ format: 'uuid' }), email: Type.Union([Type.String(), Type.Null()]), role: Type.Union([Type.Enum(ROLES), Type.Null()]) },
  { additionalProperties: false },
);

export const AdminTaskPage = Type.Object(
  {
    data: Type.Array(Type.Object({ ...Task.properties, owner: TaskOwner }, { additionalProperties: false })),
    nextCursor: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

export const AdminListTasksQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    userId: Type.Optional(Type.String({ format: 'uuid' })),
  },
  { additionalProperties: false },
);

export const TaskIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
