import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { actorOf } from '../../http/auth.js';
import { problems } from '../../http/responses.js';
import {
  CreatedWebhook,
  CreateWebhookBody,
  DeliveryIdParams,
  ListNotificationsQuery,
  ListQuery,
  Notification,
  NotificationIdParams,
  NotificationPage,
  Preferences,
  UpdatePreferencesBody,
  UpdateWebhookBody,
  Webhook,
  WebhookDelivery,
  WebhookDeliveryPage,
  WebhookIdParams,
  WebhookPage,
} from './schemas.js';
import type { NotificationsService, WebhooksService } from './service.js';

const noContent = { 204: { type: 'null' } };

export function notificationsRoutes(fastify: FastifyInstance, opts: { notifications: NotificationsService; webhooks: WebhooksService }): void {
  const { notifications, webhooks } = opts;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['notifications'];

  app.get(
    '/v1/notifications',
    {
      schema: {
        tags,
        summary: 'The caller\u2019s notifications, newest first (cursor pagination; unread=true for unread only)',
        querystring: ListNotificationsQuery,
        response: { 200: NotificationPage, ...problems(400, 401) },
      },
    },
    async (request) => notifications.list(actorOf(request), request.query),
  );

  app.post(
    '/v1/notifications/:id/read',
    { schema: { tags, summary: 'Mark a notification read', params: NotificationIdParams, response: { 200: Notification, ...problems(400, 401, 404) } } },
    async (request) => notifications.markRead(actorOf(request), request.params.id),
  );

  app.post(
    '/v1/notifications/read-all',
    { schema: { tags, summary: 'Mark every notification read', response: { ...noContent, ...problems(401) } } },
    async (request, reply) => {
      await notifications.markAllRead(actorOf(request));
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/users/me/notification-preferences',
    { schema: { tags, summary: 'Which channels notify the caller', response: { 200: Preferences, ...problems(401) } } },
    async (request) => notifications.preferences(actorOf(request)),
  );

  app.patch(
    '/v1/users/me/notification-preferences',
    {
      schema: {
        tags,
        summary: 'Turn channels on or off (inApp, email, webhooks)',
        body: UpdatePreferencesBody,
        response: { 200: Preferences, ...problems(400, 401, 413, 415) },
      },
    },
    async (request) => notifications.updatePreferences(actorOf(request), request.body),
  );

  const hookTags = ['webhooks'];

  app.post(
    '/v1/webhooks',
    {
      schema: {
        tags: hookTags,
        summary: 'Register a webhook for task events (the secret is returned once, here)',
        body: CreateWebhookBody,
        response: { 201: CreatedWebhook, ...problems(400, 401, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const hook = await webhooks.create(actorOf(request), request.body);
      return reply.code(201).header('location', `/v1/webhooks/${hook.id}`).send(hook);
    },
  );

  app.get(
    '/v1/webhooks',
    { schema: { tags: hookTags, summary: 'The caller\u2019s webhooks', querystring: ListQuery, response: { 200: WebhookPage, ...problems(400, 401) } } },
    async (request) => webhooks.list(actorOf(request), request.query),
  );

  app.get(
    '/v1/webhooks/:id',
    { schema: { tags: hookTags, summary: 'Get a webhook', params: WebhookIdParams, response: { 200: Webhook, ...problems(400, 401, 404) } } },
    async (request) => webhooks.get(actorOf(request), request.params.id),
  );

  app.patch(
    '/v1/webhooks/:id',
    {
      schema: {
        tags: hookTags,
        summary: 'Change a webhook\u2019s url, events, secret or active flag',
        params: WebhookIdParams,
        body: UpdateWebhookBody,
        response: { 200: Webhook, ...problems(400, 401, 404, 409, 413, 415) },
      },
    },
    async (request) => webhooks.update(actorOf(request), request.params.id, request.body),
  );

  app.delete(
    '/v1/webhooks/:id',
    { schema: { tags: hookTags, summary: 'Delete a webhook and its delivery log', params: WebhookIdParams, response: { ...noContent, ...problems(400, 401, 404) } } },
    async (request, reply) => {
      await webhooks.delete(actorOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/webhooks/:id/deliveries',
    {
      schema: {
        tags: hookTags,
        summary: 'Delivery log of a webhook, one row per attempt, newest first',
        params: WebhookIdParams,
        querystring: ListQuery,
        response: { 200: WebhookDeliveryPage, ...problems(400, 401, 404) },
      },
    },
    async (request) => webhooks.deliveries(actorOf(request), request.params.id, request.query),
  );

  app.post(
    '/v1/webhooks/:id/deliveries/:deliveryId/redeliver',
    {
      schema: {
        tags: hookTags,
        summary: 'Send a delivery\u2019s event again, as a new attempt',
        params: DeliveryIdParams,
        response: { 202: WebhookDelivery, ...problems(400, 401, 404) },
      },
    },
    async (request, reply) => reply.code(202).send(await webhooks.redeliver(actorOf(request), request.params.id, request.params.deliveryId)),
  );
}
