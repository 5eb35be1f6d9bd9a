import { Type, type Static } from 'typebox';
import { DateTime } from '../../http/datetime.js';
import { TASK_EVENT_TYPES } from '../../shared/events.js';

const Id = Type.String({ format: 'uuid' });
const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 }));
const Cursor = Type.Optional(Type.String({ minLength: 1, maxLength: 512 }));
const page = <T extends ReturnType<typeof Type.Object>>(item: T) =>
  Type.Object({ data: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) }, { additionalProperties: false });

// ---- in-app notifications

export const Notification = Type.Object(
  {
    id: Id,
    type: Type.Enum(TASK_EVENT_TYPES),
    title: Type.String(),
    body: Type.String(),
    taskId: Type.Union([Id, Type.Null()]),
    eventId: Id,
    createdAt: DateTime,
    readAt: Type.Union([DateTime, Type.Null()]),
  },
  { $id: 'Notification', additionalProperties: false },
);
export const NotificationPage = page(Notification);

export const ListNotificationsQuery = Type.Object(
  { limit: Limit, cursor: Cursor, unread: Type.Optional(Type.Boolean({ description: 'true: only notifications not read yet' })) },
  { additionalProperties: false },
);
export type ListNotificationsInput = Static<typeof ListNotificationsQuery>;

export const NotificationIdParams = Type.Object({ id: Id }, { additionalProperties: false });

export const Preferences = Type.Object(
  {
    inApp: Type.Boolean({ description: 'In-app notifications (GET /v1/notifications)' }),
    email: Type.Boolean({ description: 'Email, when the server has SMTP configured' }),
    webhooks: Type.Boolean({ description: 'Deliveries to the user\u2019s webhooks' }),
  },
  { $id: 'NotificationPreferences', additionalProperties: false },
);
export const UpdatePreferencesBody = Type.Object(
  { inApp: Type.Optional(Type.Boolean()), email: Type.Optional(Type.Boolean()), webhooks: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdatePreferencesInput = Static<typeof UpdatePreferencesBody>;

// ---- webhooks

const Url = Type.String({ minLength: 1, maxLength: 2048, format: 'uri', pattern: '^https?://', description: 'http(s) URL of a public host' });
const Events = Type.Array(Type.Enum(TASK_EVENT_TYPES), { minItems: 1, maxItems: TASK_EVENT_TYPES.length, uniqueItems: true });
const Secret = Type.String({ minLength: 16, maxLength: 256, pattern: '^\\S+$', description: 'HMAC key; generated when absent' });

export const Webhook = Type.Object(
  {
    id: Id,
    url: Type.String(),
    events: Type.Array(Type.Enum(TASK_EVENT_TYPES)),
    active: Type.Boolean(),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { $id: 'Webhook', additionalProperties: false },
);
export const CreatedWebhook = Type.Object(
  { ...Webhook.properties, secret: Type.String({ description: 'Shown once, here; keep it to verify signatures' }) },
  { additionalProperties: false },
);
export const WebhookPage = page(Webhook);

export const CreateWebhookBody = Type.Object(
  { url: Url, events: Events, secret: Type.Optional(Secret), active: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export type CreateWebhookInput = Static<typeof CreateWebhookBody>;

export const UpdateWebhookBody = Type.Object(
  { url: Type.Optional(Url), events: Type.Optional(Events), secret: Type.Optional(Secret), active: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateWebhookInput = Static<typeof UpdateWebhookBody>;

export const ListQuery = Type.Object({ limit: Limit, cursor: Cursor }, { additionalProperties: false });
export type ListInput = Static<typeof ListQuery>;

export const WebhookIdParams = Type.Object({ id: Id }, { additionalProperties: false });
export const DeliveryIdParams = Type.Object({ id: Id, deliveryId: Id }, { additionalProperties: false });

export const WebhookDelivery = Type.Object(
  {
    id: Id,
    webhookId: Id,
    eventId: Id,
    attempt: Type.Integer(),
    status: Type.Enum(['pending', 'succeeded', 'failed']),
    responseStatus: Type.Union([Type.Integer(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
    nextAttemptAt: DateTime,
    createdAt: DateTime,
    deliveredAt: Type.Union([DateTime, Type.Null()]),
  },
  { $id: 'WebhookDelivery', additionalProperties: false },
);
export const WebhookDeliveryPage = page(WebhookDelivery);
