// One HTTP row: autocannon with a request generator, counting status codes and X-Cache, while the
// target's resident memory is sampled.
import autocannon from 'autocannon';
import { sampleRss } from './procs.js';

export interface Req {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadSpec {
  url: string;
  durationS: number;
  connections: number;
  /** Request number i (0-based, across all connections). */
  next: (i: number) => Req;
  /** At most this many requests (a pool of distinct keys); the row then ends early. */
  amount?: number;
  /** pid whose VmRSS is sampled during the row. */
  pid?: number;
  /** Count X-Cache answers. */
  cache?: boolean;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  /** Slowest answer (ms). */
  max: number;
  errors: number;
  statusCodes: Record<string, number>;
  maxRssMb: number;
  cache?: { HIT: number; MISS: number; none: number };
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  let i = 0;
  const cache = { HIT: 0, MISS: 0, none: 0 };
  const stopRss = sampleRss(spec.pid);
  const request: autocannon.Request = {
    setupRequest: (req: autocannon.Request) => {
      const r = spec.next(i++);
      req.method = r.method;
      req.path = r.path;
      req.headers = { ...(r.body === undefined ? {} : { 'content-type': 'application/json' }), ...r.headers };
      req.body = r.body;
      return req;
    },
  };
  if (spec.cache) {
    request.onResponse = (_status, _body, _ctx, headers) => {
      const v = (headers as Record<string, string | undefined> | undefined)?.['x-cache'] ?? (headers as Record<string, string | undefined> | undefined)?.['X-Cache'];
      if (v === 'HIT') cache.HIT++;
      else if (v === 'MISS') cache.MISS++;
      else cache.none++;
    };
  }
  const limited = spec.amount !== undefined;
  let timer: NodeJS.Timeout | undefined;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        pipelining: 1,
        timeout: 30,
        ...(limited ? { amount: spec.amount } : { duration: spec.durationS }),
        requests: [request],
      },
      (err: unknown, res: autocannon.Result) => {
        if (timer) clearTimeout(timer);
        if (err) reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
        else resolve(res);
      },
    );
    // A pool-limited row still stops at its duration.
    if (limited) timer = setTimeout(() => instance.stop(), spec.durationS * 1000);
  });
  const maxRssMb = stopRss();
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = v.count ?? 0;
  const total = Object.values(statusCodes).reduce((a, b) => a + b, 0);
  return {
    requests: total,
    seconds: result.duration,
    rps: result.duration > 0 ? total / result.duration : 0,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.non2xx + result.errors + result.timeouts,
    statusCodes,
    maxRssMb,
    ...(spec.cache ? { cache } : {}),
  };
}
