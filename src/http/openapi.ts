// The OpenAPI document is generated from the route schemas; /openapi.json serves it and /docs
// renders it. docs/openapi.json is the committed copy (npm run openapi).
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { Problem } from './problem.js';

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  app.addSchema(Problem);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'task-api',
        version,
        description:
          'Task management REST API. Errors are RFC 9457 problem details (application/problem+json). ' +
          'Every authenticated POST and PATCH takes an Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header), scoped to the caller; ' +
          'the public /v1/auth routes ignore it: they have no caller to scope a key to, and a key scoped by client address could replay one client\u2019s tokens to another behind the same address.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      tags: [
        { name: 'auth', description: 'Accounts, sessions and tokens' },
        { name: 'users', description: 'Profiles and user management' },
        { name: 'tasks', description: 'Tasks' },
        { name: 'operations', description: 'Health' },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
