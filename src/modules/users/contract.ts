// What other modules may know of the users module: the account shapes and the two narrow
// interfaces it serves them (accounts for auth, owners for the admin's task list). They get these
// from the module's entry, never by importing its repository.
import { Type } from 'typebox';
import { DateTime } from '../../http/datetime.js';
import { ROLES, type Role } from '../../shared/actor.js';

/** An account as everyone may see it (no password hash). */
export interface User {
  id: string;
  email: string;
  role: Role;
  name: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** An account with its password hash: for the code that checks or changes credentials. */
export interface UserCredentials extends User {
  passwordHash: string;
}

export type NewUser = Pick<UserCredentials, 'id' | 'email' | 'passwordHash' | 'role' | 'name'>;
export type UserChanges = Partial<Pick<UserCredentials, 'name' | 'role' | 'passwordHash' | 'email'>>;

/** Accounts as the auth module uses them: sign-up, sign-in, rehash. */
export interface Accounts {
  insert(u: NewUser): Promise<User>;
  findById(id: string): Promise<User | undefined>;
  /** `email` normalised (src/shared/email.ts). */
  findCredentialsByEmail(email: string): Promise<UserCredentials | undefined>;
  update(id: string, changes: UserChanges): Promise<User | undefined>;
}

export interface UsersApi {
  /** The accounts auth signs in against (the same database: auth and users are one data owner). */
  accounts: Accounts;
}

/** A display name: 1 to 100 characters, not blank; null clears it. */
export const Name = Type.Union([Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' }), Type.Null()]);
export const Password = Type.String({ minLength: 8, maxLength: 128 });

/** An account in API answers (auth's sessions carry it too). */
export const PublicUser = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String(),
    name: Type.Union([Type.String(), Type.Null()]),
    role: Type.Enum(ROLES),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { $id: 'User', additionalProperties: false },
);
