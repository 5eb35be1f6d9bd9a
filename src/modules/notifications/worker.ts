// The delivery worker: a loop that claims due webhook deliveries and email jobs (FOR UPDATE SKIP
// LOCKED, then a lease), sends them, and records each attempt. Any number of instances can run
// it side by side. Failures are retried with exponential backoff and full jitter up to
// WEBHOOK_MAX_ATTEMPTS. Every PRUNE_EVERY_MS the loop also deletes finished deliveries and emails
// older than DELIVERY_RETENTION_DAYS (prune()), in bounded batches.
//
// Each webhook attempt runs in a span `webhook delivery`, a child of the trace context its event
// carries (the request that wrote the task), and the POST carries a traceparent of that trace.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../config.js';
import type { Database } from '../../infra/db/database.js';
import { uuidv7 } from '../../shared/ids.js';
import { NotificationsRepository, type ClaimedDelivery } from './repository.js';
import { sign } from './signature.js';
import { resolveTarget, TargetRefused } from './targets.js';
import { backoffMs } from '../../shared/backoff.js';
import { errorMessage } from '../../shared/errors.js';
import { contextOf, traceHeaders, type CarriedTraceContext } from '../../observability/trace-context.js';
import { VERSION } from '../../version.js';

type WebhookConfig = Config['notifications']['webhooks'];
const tracer = trace.getTracer('task-api/webhooks', VERSION);
const BATCH = 20;
const LEASE_MARGIN_MS = 30_000;
const MAX_ERROR_LENGTH = 500;
/** How often the loop prunes finished deliveries (each instance; SKIP LOCKED keeps them apart). */
export const PRUNE_EVERY_MS = 5 * 60_000;
/** Rows one prune statement deletes at most, and statements per table in one round. */
export const PRUNE_BATCH = 1000;
export const PRUNE_STATEMENTS = 5;

/** The delivery's event (its stored payload), as far as tracing reads it. */
function eventOf(payload: unknown): { type: string | undefined; traceContext: CarriedTraceContext | undefined } {
  const e = (typeof payload === 'object' && payload !== null ? payload : {}) as { type?: unknown; traceContext?: { traceparent?: unknown; tracestate?: unknown } };
  const tc = e.traceContext;
  const traceContext =
    typeof tc === 'object' && tc !== null && typeof tc.traceparent === 'string'
      ? { traceparent: tc.traceparent, ...(typeof tc.tracestate === 'string' ? { tracestate: tc.tracestate } : {}) }
      : undefined;
  return { type: typeof e.type === 'string' ? e.type : undefined, traceContext };
}

interface PostResult {
  status: number | null;
  error: string | null;
}

/** POSTs body to url, connecting only to the address resolveTarget checked (no DNS rebinding). */
async function post(url: string, body: string, headers: Record<string, string>, cfg: WebhookConfig): Promise<PostResult> {
  let target;
  try {
    target = await resolveTarget(url, cfg.allowPrivateTargets);
  } catch (err) {
    if (err instanceof TargetRefused) return { status: null, error: `target refused: ${err.message}` };
    throw err;
  }
  const pinned: LookupFunction = (_host, options, callback) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  const u = new URL(url);
  const client = u.protocol === 'https:' ? https : http;
  return new Promise<PostResult>((resolve) => {
    const req = client.request(
      u,
      {
        method: 'POST',
        lookup: pinned,
        timeout: cfg.timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'task-api-webhooks/1', ...headers },
      },
      (res) => {
        // The status decides; the body is drained (within the same deadline) and ignored.
        resolve({ status: res.statusCode ?? null, error: null });
        res.on('error', () => undefined);
        res.resume();
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`timed out after ${cfg.timeoutMs} ms`)), cfg.timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`timed out after ${cfg.timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: null, error: err.message }));
    req.on('close', () => clearTimeout(timer));
    req.end(body);
  });
}

export interface Mailer {
  send(message: { to: string; subject: string; text: string }): Promise<void>;
  close(): void;
}

export async function createMailer(smtpUrl: string, from: string): Promise<Mailer> {
  const { createTransport } = await import('nodemailer');
  const transport = createTransport(smtpUrl, { from });
  return {
    send: async (m) => {
      await transport.sendMail({ to: m.to, subject: m.subject, text: m.text });
    },
    close: () => transport.close(),
  };
}

export interface PruneResult {
  webhookDeliveries: number;
  emailDeliveries: number;
}

export interface DeliveryWorker {
  /** One pass: claims and sends what is due; returns how many items it handled. */
  runOnce(): Promise<number>;
  /**
   * One prune round: deletes webhook deliveries and emails that succeeded or failed, created more
   * than DELIVERY_RETENTION_DAYS ago, at most PRUNE_STATEMENTS statements of PRUNE_BATCH rows per
   * table (what is left goes in the next round). Pending rows are never deleted. Logs the counts.
   */
  prune(): Promise<PruneResult>;
  /** Stops the loop and waits for the pass in progress (bounded by the HTTP timeout). */
  stop(): Promise<void>;
}

export interface DeliveryWorkerDeps {
  database: Database;
  config: Config;
  log: FastifyBaseLogger;
  /** Pause between passes when nothing was due. */
  pollIntervalMs?: number;
  /** Pause between prune rounds (PRUNE_EVERY_MS); the first pass prunes at once. */
  pruneEveryMs?: number;
}

export function createDeliveryWorker(deps: DeliveryWorkerDeps): DeliveryWorker {
  const repo = new NotificationsRepository(deps.database.db);
  const cfg = deps.config.notifications.webhooks;
  const { log } = deps;
  let mailer: Promise<Mailer> | undefined;
  const smtpUrl = deps.config.notifications.smtpUrl;
  const getMailer = () => (mailer ??= createMailer(smtpUrl!, deps.config.notifications.mailFrom));

  /** One attempt, in a span of the trace its event carries (a new trace when it carries none). */
  async function deliver(d: ClaimedDelivery): Promise<void> {
    const event = eventOf(d.payload);
    const parent = contextOf(event.traceContext);
    const span = tracer.startSpan(
      'webhook delivery',
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          'task_api.webhook.id': d.webhookId,
          'task_api.webhook.delivery.id': d.id,
          'task_api.webhook.delivery.attempt': d.attempt,
          'task_api.event.id': d.eventId,
          ...(event.type === undefined ? {} : { 'task_api.event.type': event.type }),
        },
      },
      parent,
    );
    try {
      await context.with(trace.setSpan(parent, span), async () => {
        const result = await attempt(d, event.traceContext);
        if (result.status !== null) span.setAttribute('http.response.status_code', result.status);
        if (!(result.status !== null && result.status >= 200 && result.status < 300)) {
          span.setAttribute('error.type', result.status === null ? 'request' : String(result.status));
          span.setStatus({ code: SpanStatusCode.ERROR, message: result.status === null ? 'request failed' : `HTTP ${result.status}` });
        }
      });
    } finally {
      span.end();
    }
  }

  async function attempt(d: ClaimedDelivery, carried: CarriedTraceContext | undefined): Promise<PostResult> {
    let result: PostResult;
    if (!d.active) result = { status: null, error: 'webhook is inactive' };
    else {
      const body = JSON.stringify({ id: d.id, event: d.payload });
      const timestamp = Math.floor(Date.now() / 1000);
      result = await post(
        d.url,
        body,
        {
          // The delivery span's trace: the receiver can join the trace of the write (W3C).
          ...traceHeaders(carried),
          'webhook-id': d.id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': sign(d.secret, timestamp, body),
        },
        cfg,
      );
    }
    const ok = result.status !== null && result.status >= 200 && result.status < 300;
    const error = ok ? null : (result.error ?? `HTTP ${result.status}`).slice(0, MAX_ERROR_LENGTH);
    await repo.transaction(async (tx) => {
      await tx.finishDelivery(d.id, { status: ok ? 'succeeded' : 'failed', responseStatus: result.status, error });
      if (!ok && d.active && d.attempt < cfg.maxAttempts) {
        const next = new Date(Date.now() + backoffMs(d.attempt, { baseMs: cfg.backoffBaseMs, maxMs: cfg.backoffMaxMs }));
        await tx.insertDeliveries([{ id: uuidv7(), webhookId: d.webhookId, eventId: d.eventId, attempt: d.attempt + 1, payload: d.payload, nextAttemptAt: next }]);
      }
    });
    if (!ok) log.warn({ deliveryId: d.id, webhookId: d.webhookId, attempt: d.attempt, status: result.status, error }, 'webhook delivery failed');
    return result;
  }

  async function sendEmails(): Promise<number> {
    if (!smtpUrl) return 0;
    const due = await repo.claimEmails(BATCH, new Date(Date.now() + cfg.timeoutMs * 6 + LEASE_MARGIN_MS));
    for (const e of due) {
      try {
        await (await getMailer()).send({ to: e.recipient, subject: e.subject, text: e.body });
        await repo.finishEmail(e.id, { status: 'succeeded', error: null });
      } catch (err) {
        const error = errorMessage(err).slice(0, MAX_ERROR_LENGTH);
        const retry = e.attempts < cfg.maxAttempts;
        await repo.finishEmail(e.id, {
          status: retry ? 'pending' : 'failed',
          error,
          ...(retry ? { nextAttemptAt: new Date(Date.now() + backoffMs(e.attempts, { baseMs: cfg.backoffBaseMs, maxMs: cfg.backoffMaxMs })) } : {}),
        });
        log.warn({ emailId: e.id, attempt: e.attempts, error }, 'email delivery failed');
      }
    }
    return due.length;
  }

  async function runOnce(): Promise<number> {
    const claimed = await repo.claimDeliveries(BATCH, new Date(Date.now() + cfg.timeoutMs + LEASE_MARGIN_MS));
    await Promise.all(
      claimed.map((d) => deliver(d).catch((err: unknown) => log.error({ err, deliveryId: d.id }, 'webhook delivery could not be recorded'))),
    );
    return claimed.length + (await sendEmails());
  }

  const retentionDays = deps.config.notifications.deliveryRetentionDays;
  /** Up to PRUNE_STATEMENTS batches, stopping at the first that is not full. */
  async function pruneTable(deleteBatch: (limit: number) => Promise<number>): Promise<number> {
    let total = 0;
    for (let i = 0; i < PRUNE_STATEMENTS; i++) {
      const n = await deleteBatch(PRUNE_BATCH);
      total += n;
      if (n < PRUNE_BATCH) break;
    }
    return total;
  }

  async function prune(): Promise<PruneResult> {
    const result = {
      webhookDeliveries: await pruneTable((limit) => repo.pruneWebhookDeliveries(retentionDays, limit)),
      emailDeliveries: await pruneTable((limit) => repo.pruneEmailDeliveries(retentionDays, limit)),
    };
    if (result.webhookDeliveries + result.emailDeliveries > 0) {
      log.info({ pruned: result, retentionDays }, 'notifications: finished deliveries pruned');
    }
    return result;
  }

  return {
    runOnce,
    prune,
    async stop() {
      if (mailer) (await mailer).close();
    },
  };
}

/** Starts the loop; stop() ends it after the pass in progress. For serve (and a worker process). */
export function startDeliveryWorker(deps: DeliveryWorkerDeps): DeliveryWorker {
  const worker = createDeliveryWorker(deps);
  const pollMs = deps.pollIntervalMs ?? 1000;
  const pruneEveryMs = deps.pruneEveryMs ?? PRUNE_EVERY_MS;
  let lastPrune = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();

  const pass = async () => {
    let handled = 0;
    try {
      // A full batch means more may be due: go again at once, bounded so the loop yields.
      for (let i = 0; i < 10 && !stopped; i++) {
        handled = await worker.runOnce();
        if (handled < BATCH) break;
      }
    } catch (err) {
      deps.log.error({ err }, 'delivery worker pass failed');
    }
    if (!stopped && Date.now() - lastPrune >= pruneEveryMs) {
      lastPrune = Date.now();
      try {
        await worker.prune();
      } catch (err) {
        deps.log.warn({ err }, 'delivery worker: pruning finished deliveries failed');
      }
    }
    if (!stopped) timer = setTimeout(schedule, pollMs);
  };
  function schedule() {
    current = pass();
  }
  schedule();
  return {
    runOnce: () => worker.runOnce(),
    prune: () => worker.prune(),
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current;
      await worker.stop();
    },
  };
}
