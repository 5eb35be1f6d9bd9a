import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { problems } from '../../http/responses.js';
import type { AuthService } from './service.js';
import { Jwks, LoginBody, RefreshBody, RegisterBody, Session } from './schemas.js';
import type { KeyRing } from './keys.js';

const tags = ['auth'];
const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' };

export function authRoutes(fastify: FastifyInstance, opts: { auth: AuthService }): void {
  const { auth } = opts;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const publicRoute = { auth: 'public' as const };

  app.post(
    '/v1/auth/register',
    { config: { ...publicRoute, rateLimit: ['auth-ip'] }, schema: { tags, summary: 'Create an account', body: RegisterBody, response: { 201: Session, ...problems(400, 409, 413, 415, 503) } } },
    async (request, reply) => {
      const session = await auth.register(request.body);
      return reply.code(201).headers(noStore).send(session);
    },
  );

  app.post(
    '/v1/auth/login',
    { config: { ...publicRoute, rateLimit: ['auth-ip', 'login-account-ip', 'login-account'] }, schema: { tags, summary: 'Log in with email and password', body: LoginBody, response: { 200: Session, ...problems(400, 401, 503) } } },
    async (request, reply) => reply.headers(noStore).send(await auth.login(request.body)),
  );

  app.post(
    '/v1/auth/refresh',
    {
      config: publicRoute,
      schema: { tags, summary: 'Exchange a refresh token for a new token pair (the old one is spent)', body: RefreshBody, response: { 200: Session, ...problems(400, 401, 503) } },
    },
    async (request, reply) => reply.headers(noStore).send(await auth.refresh(request.body.refreshToken)),
  );

  app.post(
    '/v1/auth/logout',
    { config: publicRoute, schema: { tags, summary: 'Revoke the refresh token and its family', body: RefreshBody, response: { 204: { type: 'null' }, ...problems(400, 503) } } },
    async (request, reply) => {
      await auth.logout(request.body.refreshToken);
      return reply.code(204).send(null);
    },
  );
}

export function jwksRoute(app: FastifyInstance, opts: { keys: KeyRing }): void {
  app.get(
    '/.well-known/jwks.json',
    { schema: { tags, summary: 'Public keys that verify access tokens', response: { 200: Jwks } } },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(opts.keys.jwks),
  );
}
