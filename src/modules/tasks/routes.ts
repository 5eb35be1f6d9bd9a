import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { actorOf } from '../../http/auth.js';
import { etagOf, parseIfMatch } from '../../http/conditional.js';
import { resourceIdOf } from '../../http/idempotency.js';
import { problems } from '../../http/responses.js';
import { AdminListTasksQuery, AdminTaskPage, CreateTaskBody, ListTasksQuery, Task, TaskIdParams, TaskPage, UpdateTaskBody } from './schemas.js';
import type { TasksService } from './service.js';

const tags = ['tasks'];
const IfMatchHeaders = Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 1024 })) });

export function tasksRoutes(fastify: FastifyInstance, opts: { tasks: TasksService }): void {
  const { tasks } = opts;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.post(
    '/v1/tasks',
    { schema: { tags, summary: 'Create a task', body: CreateTaskBody, response: { 201: Task, ...problems(400, 401, 409, 413, 415) } } },
    async (request, reply) => {
      const task = await tasks.create(actorOf(request), request.body, resourceIdOf(request));
      return reply.code(201).header('location', `/v1/tasks/${task.id}`).header('etag', etagOf(task.version)).send(task);
    },
  );

  app.get(
    '/v1/tasks',
    {
      config: { cache: true },
      schema: {
        tags,
        summary: 'List the caller\u2019s tasks: filters, sort and cursor pagination (ETag; If-None-Match answers 304)',
        querystring: ListTasksQuery,
        response: { 200: TaskPage, 304: { type: 'null' }, ...problems(400, 401) },
      },
    },
    async (request) => tasks.list(actorOf(request), request.query),
  );

  app.get(
    '/v1/tasks/:id',
    {
      config: { cache: true },
      schema: { tags, summary: 'Get a task (ETag; If-None-Match answers 304)', params: TaskIdParams, response: { 200: Task, 304: { type: 'null' }, ...problems(400, 401, 404) } },
    },
    async (request, reply) => {
      const task = await tasks.get(actorOf(request), request.params.id);
      return reply.header('etag', etagOf(task.version)).send(task);
    },
  );

  app.patch(
    '/v1/tasks/:id',
    {
      schema: {
        tags,
        summary: 'Change some fields of a task (If-Match with a stale ETag answers 412)',
        params: TaskIdParams,
        headers: IfMatchHeaders,
        body: UpdateTaskBody,
        response: { 200: Task, ...problems(400, 401, 404, 412, 413, 415) },
      },
    },
    async (request, reply) => {
      const task = await tasks.update(actorOf(request), request.params.id, request.body, parseIfMatch(request.headers['if-match']));
      return reply.header('etag', etagOf(task.version)).send(task);
    },
  );

  app.delete(
    '/v1/tasks/:id',
    { schema: { tags, summary: 'Delete a task', params: TaskIdParams, headers: IfMatchHeaders, response: { 204: { type: 'null' }, ...problems(400, 401, 404, 412, 503) } } },
    async (request, reply) => {
      await tasks.delete(actorOf(request), request.params.id, parseIfMatch(request.headers['if-match']));
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/admin/tasks',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        summary: 'Tasks across users with their owners (admin)',
        querystring: AdminListTasksQuery,
        response: { 200: AdminTaskPage, ...problems(400, 401, 403, 503) },
      },
    },
    async (request) => tasks.listAll(actorOf(request), request.query),
  );
}
