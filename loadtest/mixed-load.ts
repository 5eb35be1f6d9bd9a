// The mixed workload (80 % list of 20, 15 % create, 5 % patch) as a fault test drives it: a
// bounded number of requests in a bounded time over a fixed set of users, every answer counted
// by status, and every write recorded for the lost-write check (loadtest/writes.ts). Writes carry
// an Idempotency-Key; a write whose answer was lost is tried again with the same key, as a
// careful client would. Reads are never retried by the client: a failed read is the system's.
import { randomUUID } from 'node:crypto';
import { WriteLog } from './writes.js';

export interface LoadUser {
  id: string;
  token: string;
  /** Tasks of this user a patch may pick (creates of the run are added). */
  taskIds: string[];
}

export interface MixedLoadOptions {
  baseUrl: string;
  users: LoadUser[];
  concurrency: number;
  durationMs: number;
  maxRequests: number;
  /** Tries after the first for a write whose answer was lost (network error, 5xx, 409 in flight). */
  writeRetries: number;
  requestTimeoutMs: number;
  /** Prefix of every title the run writes (how the checker tells the run's rows). */
  runTag: string;
  /** Ends the run early (the requests in flight finish). */
  signal?: AbortSignal;
}

export interface Failure {
  method: string;
  path: string;
  status?: number;
  error?: string;
  body?: string;
}

export interface MixedLoadResult {
  requests: number;
  byStatus: Record<string, number>;
  /** Answers that were not 2xx and network errors, reads and writes, first tries and retries. */
  failures: Failure[];
  /** Reads that did not end in a 2xx. */
  failedReads: number;
  writes: WriteLog;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runMixedLoad(o: MixedLoadOptions): Promise<MixedLoadResult> {
  const writes = new WriteLog();
  const byStatus: Record<string, number> = {};
  const failures: Failure[] = [];
  let requests = 0;
  let failedReads = 0;
  const deadline = Date.now() + o.durationMs;
  const more = () => requests < o.maxRequests && Date.now() < deadline && !o.signal?.aborted;

  async function call(method: string, path: string, user: LoadUser, body?: unknown, key?: string) {
    requests += 1;
    const headers: Record<string, string> = { authorization: `Bearer ${user.token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (key !== undefined) headers['idempotency-key'] = key;
    try {
      const res = await fetch(o.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(o.requestTimeoutMs),
      });
      const text = await res.text();
      byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
      if (res.status >= 300) failures.push({ method, path, status: res.status, body: text.slice(0, 300) });
      return { status: res.status, text, retryAfter: Number(res.headers.get('retry-after') ?? '') };
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const error = cause?.code ?? cause?.message ?? (err as Error).message;
      byStatus[error] = (byStatus[error] ?? 0) + 1;
      failures.push({ method, path, error });
      return undefined;
    }
  }

  async function write(method: 'POST' | 'PATCH', path: string, user: LoadUser, body: Record<string, unknown>, title?: string) {
    const key = randomUUID();
    for (let t = 0; t <= o.writeRetries; t++) {
      if (title !== undefined) writes.attempt(key, title, user.id);
      const res = await call(method, path, user, body, key);
      if (res && res.status < 300) {
        if (title !== undefined) {
          const id = (JSON.parse(res.text) as { id: string }).id;
          writes.ack(key, id);
          user.taskIds.push(id);
        }
        return;
      }
      if (title !== undefined) writes.fail(key, res ? String(res.status) : 'network');
      const retriable = res === undefined || res.status >= 500 || res.status === 409;
      if (!retriable) return;
      await sleep(res && res.retryAfter > 0 ? Math.min(res.retryAfter, 5) * 1000 : 200);
    }
  }

  async function vu(n: number) {
    for (let i = 0; more(); i++) {
      const user = o.users[(n + i) % o.users.length]!;
      const r = Math.random();
      if (r < 0.8) {
        const res = await call('GET', '/v1/tasks?limit=20', user);
        if (!res || res.status >= 300) failedReads += 1;
      } else if (r < 0.95 || user.taskIds.length === 0) {
        const title = `${o.runTag}-${randomUUID()}`;
        await write('POST', '/v1/tasks', user, { title, tags: ['load'] }, title);
      } else {
        const id = user.taskIds[Math.floor(Math.random() * user.taskIds.length)]!;
        await write('PATCH', `/v1/tasks/${id}`, user, { priority: (['low', 'medium', 'high'] as const)[i % 3] });
      }
    }
  }

  await Promise.all(Array.from({ length: o.concurrency }, (_, n) => vu(n)));
  return { requests, byStatus, failures, failedReads, writes };
}
