import { Type, type Static } from 'typebox';
import { ROLES } from '../../shared/actor.js';
import { Name, Password, PublicUser as User } from './contract.js';

export { Name, Password, User };

export const UpdateMeBody = Type.Object(
  { name: Type.Optional(Name), password: Type.Optional(Password), currentPassword: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateMeInput = Static<typeof UpdateMeBody>;

export const AdminUpdateUserBody = Type.Object(
  { name: Type.Optional(Name), role: Type.Optional(Type.Enum(ROLES)) },
  { additionalProperties: false, minProperties: 1 },
);

export const ListUsersQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  },
  { additionalProperties: false },
);

export const UserPage = Type.Object(
  { data: Type.Array(User), nextCursor: Type.Union([Type.String(), Type.Null()]) },
  { additionalProperties: false },
);

export const UserIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
