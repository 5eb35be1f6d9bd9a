// Notification and webhook use cases, scoped to the actor: another user's notification, webhook
// or delivery is indistinguishable from a missing one.
import { randomBytes } from 'node:crypto';
import type { Actor } from '../../shared/actor.js';
import { decodeIdCursor, encodeIdCursor, pageOf, type Page } from '../../shared/cursor.js';
import { badRequest, notFound } from '../../shared/errors.js';
import { uuidv7 } from '../../shared/ids.js';
import type { NotificationsRepository, Notification, Preferences, Webhook, WebhookDelivery } from './repository.js';
import type { CreateWebhookInput, ListInput, ListNotificationsInput, UpdatePreferencesInput, UpdateWebhookInput } from './schemas.js';
import { resolveTarget, TargetRefused } from './targets.js';

const byId = (tag: string) => (last: { id: string }) => encodeIdCursor(tag, last);
const afterOf = (cursor: string | undefined, tag: string) => (cursor === undefined ? undefined : decodeIdCursor(cursor, tag));

export class NotificationsService {
  constructor(private readonly repo: NotificationsRepository) {}

  async list(actor: Actor, q: ListNotificationsInput): Promise<Page<Notification>> {
    const limit = q.limit ?? 20;
    const rows = await this.repo.listNotifications(actor.userId, q.unread === true, limit + 1, afterOf(q.cursor, 'notifications'));
    return pageOf(rows, limit, byId('notifications'));
  }

  async markRead(actor: Actor, id: string): Promise<Notification> {
    return (await this.repo.markRead(actor.userId, id)) ?? notFoundOf('Notification');
  }

  async markAllRead(actor: Actor): Promise<void> {
    await this.repo.markAllRead(actor.userId);
  }

  async preferences(actor: Actor): Promise<Preferences> {
    return this.repo.preferences(actor.userId);
  }

  async updatePreferences(actor: Actor, input: UpdatePreferencesInput): Promise<Preferences> {
    const changes: Partial<Preferences> = {};
    if (input.inApp !== undefined) changes.inApp = input.inApp;
    if (input.email !== undefined) changes.email = input.email;
    if (input.webhooks !== undefined) changes.webhooks = input.webhooks;
    return this.repo.savePreferences(actor.userId, changes);
  }
}

export class WebhooksService {
  constructor(
    private readonly repo: NotificationsRepository,
    private readonly opts: { allowPrivateTargets: boolean },
  ) {}

  async create(actor: Actor, input: CreateWebhookInput): Promise<Webhook & { secret: string }> {
    await this.checkTarget(input.url);
    const secret = input.secret ?? `whsec_${randomBytes(32).toString('base64url')}`;
    const now = new Date();
    const hook = await this.repo.insertWebhook({
      id: uuidv7(),
      userId: actor.userId,
      url: input.url,
      events: [...new Set(input.events)],
      secret,
      active: input.active ?? true,
      createdAt: now,
      updatedAt: now,
    });
    return { ...hook, secret };
  }

  async list(actor: Actor, q: ListInput): Promise<Page<Webhook>> {
    const limit = q.limit ?? 20;
    return pageOf(await this.repo.listWebhooks(actor.userId, limit + 1, afterOf(q.cursor, 'webhooks')), limit, byId('webhooks'));
  }

  async get(actor: Actor, id: string): Promise<Webhook> {
    return (await this.repo.getWebhook(actor.userId, id)) ?? notFoundOf('Webhook');
  }

  async update(actor: Actor, id: string, input: UpdateWebhookInput): Promise<Webhook> {
    if (input.url !== undefined) await this.checkTarget(input.url);
    const changes: Parameters<NotificationsRepository['updateWebhook']>[2] = {};
    if (input.url !== undefined) changes.url = input.url;
    if (input.events !== undefined) changes.events = [...new Set(input.events)];
    if (input.active !== undefined) changes.active = input.active;
    if (input.secret !== undefined) changes.secret = input.secret;
    return (await this.repo.updateWebhook(actor.userId, id, changes)) ?? notFoundOf('Webhook');
  }

  async delete(actor: Actor, id: string): Promise<void> {
    if (!(await this.repo.deleteWebhook(actor.userId, id))) notFoundOf('Webhook');
  }

  async deliveries(actor: Actor, id: string, q: ListInput): Promise<Page<WebhookDelivery>> {
    await this.get(actor, id);
    const limit = q.limit ?? 20;
    return pageOf(await this.repo.listDeliveries(id, limit + 1, afterOf(q.cursor, 'deliveries')), limit, byId('deliveries'));
  }

  /** Queues the delivery's event again, now, as a new attempt of the same webhook and event. */
  async redeliver(actor: Actor, id: string, deliveryId: string): Promise<WebhookDelivery> {
    await this.get(actor, id);
    const original = (await this.repo.getDelivery(id, deliveryId)) ?? notFoundOf('Delivery');
    return this.repo.transaction(async (tx) => {
      const attempt = (await tx.maxAttempt(id, original.eventId)) + 1;
      const [row] = await tx.insertDeliveries([
        { id: uuidv7(), webhookId: id, eventId: original.eventId, attempt, payload: original.payload, nextAttemptAt: new Date() },
      ]);
      return row!;
    });
  }

  private async checkTarget(url: string): Promise<void> {
    try {
      await resolveTarget(url, this.opts.allowPrivateTargets);
    } catch (err) {
      if (err instanceof TargetRefused) throw badRequest(`url ${err.message}`, [{ in: 'body', field: 'url', message: err.message }]);
      throw err;
    }
  }
}

function notFoundOf(what: string): never {
  throw notFound(what);
}
