// One HTTP request, timed and recorded. Node's global fetch (undici) keeps connections alive and
// reuses them across requests and VUs.
import type { Recorder } from './stats.js';

export interface Answer<T> {
  status: number;
  body: T | undefined;
  headers: Headers;
}

export interface RequestOptions {
  body?: unknown;
  token?: string | undefined;
  query?: Record<string, string>;
  headers?: Record<string, string>;
}

/** Thrown when the run's hard time limit (or Ctrl-C) cut the request: the VU is abandoned. */
export class RunAborted extends Error {
  constructor() {
    super('run aborted');
    this.name = 'RunAborted';
  }
}

export class HttpClient {
  constructor(
    private readonly baseUrl: string,
    private readonly recorder: Recorder,
    private readonly timeoutMs: number,
    private readonly runSignal: AbortSignal,
  ) {}

  /** The answer, whatever its status; undefined after a network error or a timeout (both recorded). */
  async request<T>(step: string, method: string, path: string, opts: RequestOptions = {}): Promise<Answer<T> | undefined> {
    if (this.runSignal.aborted) throw new RunAborted();
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'task-api-loadtest', ...opts.headers };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = AbortSignal.any([this.runSignal, timeout]);
    const started = performance.now();
    let status: number;
    let text: string;
    let responseHeaders: Headers;
    try {
      const res = await fetch(url, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal });
      status = res.status;
      responseHeaders = res.headers;
      text = await res.text(); // the full body is part of the latency
    } catch (err) {
      if (this.runSignal.aborted) {
        this.recorder.aborted += 1;
        throw new RunAborted();
      }
      if (timeout.aborted) {
        this.recorder.record(step, { error: 'timeout', message: `no full answer within ${this.timeoutMs} ms` });
      } else {
        this.recorder.record(step, { error: 'network', message: describeNetworkError(err) });
      }
      return undefined;
    }
    this.recorder.record(step, { status, ms: performance.now() - started });
    let body: T | undefined;
    if (text !== '' && (responseHeaders.get('content-type') ?? '').includes('json')) {
      try {
        body = JSON.parse(text) as T;
      } catch {
        body = undefined;
      }
    }
    return { status, body, headers: responseHeaders };
  }
}

/** "ECONNREFUSED 127.0.0.1:9" rather than undici's bare "fetch failed". */
function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    return typeof code === 'string' && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return err.message;
}
