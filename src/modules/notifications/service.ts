// Notification and webhook use cases, scoped to the actor: another user's notification, webhook
// or delivery is indistinguishable from a missing one.
import { randomBytes } from 'node:crypto';
import type { Actor } from '../../shared/actor.js';
import { decodeIdCursor, encodeIdCursor, pageOf, type Page } from '../../shared/cursor.js';
import { isForeignKeyViolation, isUniqueViolation } from '../../shared/db-errors.js';
import { accountGone, AppError, badRequest, notFound } from '../../shared/errors.js';
import { uuidv7 } from '../../shared/ids.js';
import { ACCOUNT_CLOSED, DEFAULT_PREFERENCES, type NotificationsRepository, type Notification, type Preferences, type Webhook, type WebhookDelivery } from './repository.js';
import type { CreateWebhookInput, ListInput, ListNotificationsInput, UpdatePreferencesInput, UpdateWebhookInput } from './schemas.js';
import { resolveTarget, TargetRefused } from './targets.js';

/**
 * Whether the account exists as far as this module knows: not deleted (user.deleted closed it).
 * An access token outlives its account by up to its TTL: a call that finds nothing of the
 * caller's asks this before answering, and answers 401 'account-gone' when the account is gone.
 */
export type AccountExists = (userId: string) => Promise<boolean>;

const byId = (tag: string) => (last: { id: string }) => encodeIdCursor(tag, last);
const afterOf = (cursor: string | undefined, tag: string) => (cursor === undefined ? undefined : decodeIdCursor(cursor, tag));

export class NotificationsService {
  constructor(
    private readonly repo: NotificationsRepository,
    /** Asked when nothing of the caller's is found (their account may be gone). */
    private readonly accountExists: AccountExists,
  ) {}

  async list(actor: Actor, q: ListNotificationsInput): Promise<Page<Notification>> {
    const limit = q.limit ?? 20;
    const rows = await this.repo.listNotifications(actor.userId, q.unread === true, limit + 1, afterOf(q.cursor, 'notifications'));
    if (rows.length === 0) await ensureAccount(this.accountExists, actor);
    return pageOf(rows, limit, byId('notifications'));
  }

  async markRead(actor: Actor, id: string): Promise<Notification> {
    return (await this.repo.markRead(actor.userId, id)) ?? (await missing(this.accountExists, actor, 'Notification'));
  }

  async markAllRead(actor: Actor): Promise<void> {
    if ((await this.repo.markAllRead(actor.userId)) === 0) await ensureAccount(this.accountExists, actor);
  }

  async preferences(actor: Actor): Promise<Preferences> {
    const stored = await this.repo.storedPreferences(actor.userId);
    if (stored) return stored;
    await ensureAccount(this.accountExists, actor);
    return DEFAULT_PREFERENCES;
  }

  async updatePreferences(actor: Actor, input: UpdatePreferencesInput): Promise<Preferences> {
    const changes: Partial<Preferences> = {};
    if (input.inApp !== undefined) changes.inApp = input.inApp;
    if (input.email !== undefined) changes.email = input.email;
    if (input.webhooks !== undefined) changes.webhooks = input.webhooks;
    const saved = await this.repo.savePreferences(actor.userId, changes);
    if (saved === ACCOUNT_CLOSED) throw accountGone();
    return saved;
  }
}

export class WebhooksService {
  constructor(
    private readonly repo: NotificationsRepository,
    private readonly opts: { allowPrivateTargets: boolean; maxPerUser: number },
    /** Asked when nothing of the caller's is found (their account may be gone). */
    private readonly accountExists: AccountExists,
  ) {}

  async create(actor: Actor, input: CreateWebhookInput): Promise<Webhook & { secret: string }> {
    await this.checkTarget(input.url);
    const secret = input.secret ?? `whsec_${randomBytes(32).toString('base64url')}`;
    const now = new Date();
    const row = {
      id: uuidv7(),
      userId: actor.userId,
      url: input.url,
      events: [...new Set(input.events)],
      secret,
      active: input.active ?? true,
      createdAt: now,
      updatedAt: now,
    };
    const hook = await this.repo.insertWebhookCapped(row, this.opts.maxPerUser).catch(urlTaken);
    if (hook === ACCOUNT_CLOSED) throw accountGone();
    if (hook === 'limit-reached') {
      throw new AppError(409, 'webhook-limit', 'Conflict', `At most ${this.opts.maxPerUser} webhooks per user; delete one first`);
    }
    return { ...hook, secret };
  }

  async list(actor: Actor, q: ListInput): Promise<Page<Webhook>> {
    const limit = q.limit ?? 20;
    const rows = await this.repo.listWebhooks(actor.userId, limit + 1, afterOf(q.cursor, 'webhooks'));
    if (rows.length === 0) await ensureAccount(this.accountExists, actor);
    return pageOf(rows, limit, byId('webhooks'));
  }

  async get(actor: Actor, id: string): Promise<Webhook> {
    return (await this.repo.getWebhook(actor.userId, id)) ?? (await missing(this.accountExists, actor, 'Webhook'));
  }

  async update(actor: Actor, id: string, input: UpdateWebhookInput): Promise<Webhook> {
    if (input.url !== undefined) await this.checkTarget(input.url);
    const changes: Parameters<NotificationsRepository['updateWebhook']>[2] = {};
    if (input.url !== undefined) changes.url = input.url;
    if (input.events !== undefined) changes.events = [...new Set(input.events)];
    if (input.active !== undefined) changes.active = input.active;
    if (input.secret !== undefined) changes.secret = input.secret;
    return (await this.repo.updateWebhook(actor.userId, id, changes).catch(urlTaken)) ?? (await missing(this.accountExists, actor, 'Webhook'));
  }

  async delete(actor: Actor, id: string): Promise<void> {
    if (!(await this.repo.deleteWebhook(actor.userId, id))) await missing(this.accountExists, actor, 'Webhook');
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
    try {
      return await this.repo.transaction(async (tx) => {
        const attempt = (await tx.maxAttempt(id, original.eventId)) + 1;
        const [row] = await tx.insertDeliveries([
          { id: uuidv7(), webhookId: id, eventId: original.eventId, attempt, payload: original.payload, nextAttemptAt: new Date() },
        ]);
        return row!;
      });
    } catch (err) {
      // The webhook was deleted meanwhile, by its owner or with the account.
      if (isForeignKeyViolation(err)) return missing(this.accountExists, actor, 'Webhook');
      throw err;
    }
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

/** One webhook per url and user: a second one would deliver every event twice. */
function urlTaken(err: unknown): never {
  if (isUniqueViolation(err)) {
    const message = 'you already have a webhook for this url';
    throw new AppError(409, 'webhook-exists', 'Conflict', `url: ${message}`, [{ in: 'body', field: 'url', message }]);
  }
  throw err;
}

function notFoundOf(what: string): never {
  throw notFound(what);
}

/** A 401 'account-gone' when the caller's account no longer exists (their access token outlived it). */
async function ensureAccount(exists: AccountExists, actor: Actor): Promise<void> {
  if (!(await exists(actor.userId))) throw accountGone();
}

/** Nothing of the caller's by that id: a 404 naming what, or the 401 of ensureAccount when that is why. */
async function missing(exists: AccountExists, actor: Actor, what: string): Promise<never> {
  await ensureAccount(exists, actor);
  return notFoundOf(what);
}
