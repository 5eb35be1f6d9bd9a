// Shapes of response bodies as the tests read them, and request bodies typed from the schemas.
import type { Static } from 'typebox';
import type { LoginBody, RefreshBody } from '../../src/modules/auth/schemas.js';
import type { AdminUpdateUserBody } from '../../src/modules/users/schemas.js';
import type { TaskSnapshot } from '../../src/shared/events.js';

export type LoginInput = Static<typeof LoginBody>;
export type RefreshInput = Static<typeof RefreshBody>;
export type AdminUpdateInput = Static<typeof AdminUpdateUserBody>;

/** A task as the API returns it: the same shape events carry. */
export type TaskBody = TaskSnapshot;

export interface PageBody<T = TaskBody> {
  data: T[];
  nextCursor: string | null;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  errors?: { in: string; field: string; message: string }[];
}

export interface UserBody {
  id: string;
  email: string;
  name: string | null;
  role: 'user' | 'admin';
  createdAt: string;
  updatedAt: string;
}
