import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { actorOf } from '../../http/auth.js';
import { problems } from '../../http/responses.js';
import { AdminUpdateUserBody, ListUsersQuery, UpdateMeBody, User, UserIdParams, UserPage } from './schemas.js';
import type { UsersService } from './service.js';

const tags = ['users'];
const admin = { auth: 'admin' as const };
const noContent = { 204: { type: 'null' } };

export function usersRoutes(fastify: FastifyInstance, opts: { users: UsersService }): void {
  const { users } = opts;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/v1/users/me', { schema: { tags, summary: 'The caller\u2019s profile', response: { 200: User, ...problems(401) } } }, async (request) =>
    users.me(actorOf(request)),
  );

  app.patch(
    '/v1/users/me',
    {
      config: { rateLimit: ['password-change'] },
      schema: {
        tags,
        summary: 'Change name or password (a password change ends every session)',
        body: UpdateMeBody,
        response: { 200: User, ...problems(400, 401, 413, 415) },
      },
    },
    async (request) => users.updateMe(actorOf(request), request.body),
  );

  app.delete(
    '/v1/users/me',
    { schema: { tags, summary: 'Delete the account and all its tasks', response: { ...noContent, ...problems(401, 409) } } },
    async (request, reply) => {
      await users.deleteMe(actorOf(request));
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/users',
    { config: admin, schema: { tags, summary: 'List users (admin)', querystring: ListUsersQuery, response: { 200: UserPage, ...problems(400, 401, 403) } } },
    async (request) => users.list(actorOf(request), request.query.limit ?? 20, request.query.cursor),
  );

  app.get(
    '/v1/users/:id',
    { config: admin, schema: { tags, summary: 'Get a user (admin)', params: UserIdParams, response: { 200: User, ...problems(400, 401, 403, 404) } } },
    async (request) => users.get(actorOf(request), request.params.id),
  );

  app.patch(
    '/v1/users/:id',
    {
      config: admin,
      schema: {
        tags,
        summary: 'Change a user\u2019s name or role (admin)',
        params: UserIdParams,
        body: AdminUpdateUserBody,
        response: { 200: User, ...problems(400, 401, 403, 404, 409) },
      },
    },
    async (request) => users.update(actorOf(request), request.params.id, request.body),
  );

  app.delete(
    '/v1/users/:id',
    { config: admin, schema: { tags, summary: 'Delete a user and their tasks (admin)', params: UserIdParams, response: { ...noContent, ...problems(400, 401, 403, 404, 409) } } },
    async (request, reply) => {
      await users.delete(actorOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
}
