// The chaos run's clients: a few concurrent loops through the public URL (NGINX), each owning one
// of the registered users' sessions and the tasks it created. Creates carry a marker (the title)
// and an Idempotency-Key; a create or update that was not acknowledged is tried again with the
// same key (and body) until it is, a definite refusal comes, or the retry budget ends. A task's
// updates come from its client alone, one at a time, and a task whose update was given up
// unacknowledged gets no more: so the checker knows which values a task may hold. Reads (GET by
// id, lists) are never retried: a failed read is the system's. Every try is logged with its time,
// for the error windows of the faults. Bounded by count (maxRequests) and time (the deadline).
import { randomUUID } from 'node:crypto';
import type { ClientHistory, CreateRecord, TryOutcome, UpdateRecord } from './history.js';

export interface ChaosUser {
  id: string;
  token: string;
}

export type Op = 'create' | 'update' | 'get' | 'list';

export interface RequestEntry {
  op: Op;
  /** ms since the epoch. */
  start: number;
  end: number;
  outcome: TryOutcome;
}

export interface LoadOptions {
  baseUrl: string;
  users: ChaosUser[];
  clients: number;
  /** No new operation after this (ms since the epoch); retries of a write in flight get retryGraceMs more. */
  deadline: number;
  retryGraceMs: number;
  maxRequests: number;
  timeoutMs: number;
  /** Marker prefix: every title of the run starts with it. */
  runTag: string;
  /** Pause between one client's operations. */
  thinkMs: number;
  /** Tries of one write at most (the first included). */
  maxTries: number;
  /** Ends the load early: no new operation (writes in flight finish their retries). */
  signal: AbortSignal;
}

export interface LoadResult extends ClientHistory {
  requests: RequestEntry[];
  /** GET by id of a task whose create was acknowledged answered 404 (read-your-writes broken). */
  notFoundReads: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface OwnTask {
  id: string;
  nextSeq: number;
  /** False once an update of it was given up unacknowledged: no further updates. */
  clean: boolean;
}

/** Whether a write's try should be made again with the same key: no answer, 5xx, in flight (409) or 429. */
export const retriable = (o: TryOutcome) => o.kind === 'error' || o.kind === 'timeout' || (o.kind === 'failed' && (o.status >= 500 || o.status === 409 || o.status === 429));

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { creates: [], updates: [], hungReads: 0, requests: [], notFoundReads: 0 };
  let sent = 0;
  const more = () => sent < o.maxRequests && Date.now() < o.deadline && !o.signal.aborted;
  const retryUntil = () => (o.signal.aborted ? Math.min(o.deadline, Date.now()) : o.deadline) + o.retryGraceMs;

  async function call(op: Op, method: string, path: string, user: ChaosUser, body?: unknown, key?: string) {
    sent += 1;
    const headers: Record<string, string> = { authorization: `Bearer ${user.token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (key !== undefined) headers['idempotency-key'] = key;
    const start = Date.now();
    let outcome: TryOutcome;
    let text = '';
    let retryAfter = 0;
    try {
      const res = await fetch(o.baseUrl + path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      text = await res.text();
      retryAfter = Number(res.headers.get('retry-after') ?? '') || 0;
      outcome = res.status < 300 ? { kind: 'ok', status: res.status } : { kind: 'failed', status: res.status };
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string; message?: string }; message?: string };
      outcome = e.name === 'TimeoutError' ? { kind: 'timeout' } : { kind: 'error', error: e.cause?.code ?? e.cause?.message ?? e.message ?? String(err) };
    }
    result.requests.push({ op, start, end: Date.now(), outcome });
    return { outcome, text, retryAfter };
  }

  /** One write, tried with its key until acknowledged, refused, or out of tries/time; returns the answer's body when acknowledged. */
  async function write(op: 'create' | 'update', method: string, path: string, user: ChaosUser, body: unknown, key: string, tries: TryOutcome[]) {
    for (let t = 0; t < o.maxTries; t++) {
      if (t > 0 && Date.now() > retryUntil()) break;
      const res = await call(op, method, path, user, body, key);
      tries.push(res.outcome);
      if (res.outcome.kind === 'ok') return res.text;
      if (!retriable(res.outcome)) break;
      await sleep(res.retryAfter > 0 ? Math.min(res.retryAfter, 3) * 1000 : Math.min(300 * (t + 1), 3000));
    }
    return undefined;
  }

  async function client(n: number) {
    const user = o.users[n % o.users.length]!;
    const own: OwnTask[] = [];
    for (let i = 0; more(); i++) {
      const r = Math.random();
      const clean = own.filter((t) => t.clean);
      if (r < 0.3 || own.length === 0) {
        const c: CreateRecord = { marker: `${o.runTag}-c${n}-${i}`, key: randomUUID(), userId: user.id, tries: [] };
        result.creates.push(c);
        const text = await write('create', 'POST', '/v1/tasks', user, { title: c.marker, tags: ['chaos'] }, c.key, c.tries);
        if (text !== undefined) {
          c.ackedId = (JSON.parse(text) as { id: string }).id;
          own.push({ id: c.ackedId, nextSeq: 0, clean: true });
        }
      } else if (r < 0.5 && clean.length > 0) {
        const task = clean[Math.floor(Math.random() * clean.length)]!;
        const u: UpdateRecord = { taskId: task.id, seq: task.nextSeq++, key: randomUUID(), value: `${o.runTag}-u-${task.id.slice(-8)}-${task.nextSeq}`, tries: [], acked: false };
        result.updates.push(u);
        const text = await write('update', 'PATCH', `/v1/tasks/${task.id}`, user, { description: u.value }, u.key, u.tries);
        u.acked = text !== undefined;
        if (!u.acked) task.clean = false;
      } else if (r < 0.75) {
        const task = own[Math.floor(Math.random() * own.length)]!;
        const res = await call('get', 'GET', `/v1/tasks/${task.id}`, user);
        if (res.outcome.kind === 'timeout') result.hungReads += 1;
        if (res.outcome.kind === 'failed' && res.outcome.status === 404) result.notFoundReads += 1;
      } else {
        const res = await call('list', 'GET', '/v1/tasks?limit=20', user);
        if (res.outcome.kind === 'timeout') result.hungReads += 1;
      }
      if (o.thinkMs > 0) await sleep(o.thinkMs * (0.5 + Math.random()));
    }
  }

  await Promise.all(Array.from({ length: o.clients }, (_, n) => client(n)));
  return result;
}

/** Registers a user through the public URL; retried a few times (the cluster may be warming up). */
export async function register(baseUrl: string, email: string, timeoutMs: number): Promise<ChaosUser> {
  let last = '';
  for (let t = 0; t < 10; t++) {
    try {
      const res = await fetch(`${baseUrl}/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password: 'correct horse battery staple', name: 'Chaos' }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (res.status === 201) {
        const body = JSON.parse(text) as { accessToken: string; user: { id: string } };
        return { id: body.user.id, token: body.accessToken };
      }
      last = `${res.status} ${text.slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(1000);
  }
  throw new Error(`register ${email}: ${last}`);
}
