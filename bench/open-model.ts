// Open-model load: requests start on a fixed schedule (rate per second, evenly spaced) whatever
// the server's pace, and each latency counts from the request's scheduled start, so a stall is
// charged to every request it delayed (no coordinated omission). autocannon's rate option sends
// each second's quota in a burst and waits for answers on its connections, which is not this.
// node:http with a keep-alive Agent; bounded in count (rate x duration), sockets and time.
import http from 'node:http';
import type { Req } from './load.js';
import { sampleRss } from './procs.js';
import { percentile } from './stats.js';

export interface OpenSpec {
  url: string;
  /** Requests per second, evenly spaced. */
  rate: number;
  durationS: number;
  next: (i: number) => Req;
  /** pid whose VmRSS is sampled during the row. */
  pid?: number;
  /** Sockets of the keep-alive Agent; a request with none free waits in the Agent's queue (and that wait is charged). */
  maxSockets?: number;
  /** A request not answered this long after it was sent is abandoned and counted as an error. */
  timeoutMs?: number;
  /** After the last scheduled start, wait at most this long for the answers still due. */
  drainMs?: number;
}

export interface OpenResult {
  /** Requests scheduled (rate x duration). */
  scheduled: number;
  /** Requests answered (any status). */
  requests: number;
  /** Answers per second from the first scheduled start to the last answer. */
  rps: number;
  seconds: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  statusCodes: Record<string, number>;
  /** The generator's own lateness in starting a request (ms): large values mean the generator, not the server, fell behind. */
  dispatchLagMaxMs: number;
  maxRssMb: number;
  firstError?: string;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

export async function runOpen(spec: OpenSpec): Promise<OpenResult> {
  const total = Math.max(1, Math.round(spec.rate * spec.durationS));
  const interval = 1000 / spec.rate;
  const timeoutMs = spec.timeoutMs ?? 30_000;
  const drainMs = spec.drainMs ?? 30_000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.maxSockets ?? 512, maxFreeSockets: spec.maxSockets ?? 512 });
  const target = new URL(spec.url);
  const latencies = new Float64Array(total);
  let answered = 0;
  let finished = 0;
  let errors = 0;
  let firstError: string | undefined;
  let lastDone = 0;
  let lagMax = 0;
  const statusCodes: Record<string, number> = {};
  const answeredFlags = new Uint8Array(total);
  let closed = false;
  const stopRss = sampleRss(spec.pid);
  let allDone: () => void = () => undefined;
  const done = new Promise<void>((r) => (allDone = r));

  const finish = (i: number, scheduled: number, status: number | string) => {
    if (closed) return;
    const t = nowMs();
    answeredFlags[i] = 1;
    latencies[finished++] = t - scheduled;
    lastDone = Math.max(lastDone, t);
    statusCodes[String(status)] = (statusCodes[String(status)] ?? 0) + 1;
    if (typeof status === 'number') answered++;
    if (typeof status !== 'number' || status < 200 || status > 299) {
      errors++;
      firstError ??= `request ${i}: ${status}`;
    }
    if (finished === total) allDone();
  };

  const send = (i: number, scheduled: number) => {
    const r = spec.next(i);
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(r.body);
    }
    let settled = false;
    const settle = (status: number | string) => {
      if (settled) return;
      settled = true;
      finish(i, scheduled, status);
    };
    const req = http.request({ agent, host: target.hostname, port: target.port, method: r.method, path: r.path, headers }, (res) => {
      res.on('data', () => undefined);
      res.once('end', () => settle(res.statusCode ?? 0));
      res.once('error', (err) => settle(`error ${err.message}`));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.once('error', (err) => settle(err.message === 'timeout' ? 'timeout' : `error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    req.end(r.body);
  };

  const t0 = nowMs() + 20;
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const t = nowMs();
    while (next < total) {
      const due = t0 + next * interval;
      if (due > t) break;
      lagMax = Math.max(lagMax, t - due);
      send(next, due);
      next++;
    }
    if (next < total) timer = setTimeout(tick, Math.max(0, t0 + next * interval - nowMs()));
  };
  timer = setTimeout(tick, 20);

  const scheduleEnd = t0 + total * interval;
  let cutoff: NodeJS.Timeout | undefined;
  await Promise.race([
    done,
    new Promise<void>((resolve) => {
      cutoff = setTimeout(resolve, scheduleEnd - nowMs() + drainMs);
    }),
  ]);
  clearTimeout(cutoff);
  clearTimeout(timer);
  // Whatever was never answered (or never started) is an error, charged up to now.
  closed = true;
  const end = nowMs();
  const unanswered = total - finished;
  for (let i = 0, k = finished; i < total; i++) {
    if (answeredFlags[i]) continue;
    latencies[k++] = end - (t0 + i * interval);
    errors++;
    statusCodes.unanswered = (statusCodes.unanswered ?? 0) + 1;
  }
  if (unanswered > 0) firstError ??= `${unanswered} requests unanswered ${drainMs} ms after the schedule ended`;
  agent.destroy();
  const maxRssMb = stopRss();
  const seconds = (Math.max(lastDone, scheduleEnd) - t0) / 1000;
  let max = 0;
  for (const v of latencies) max = Math.max(max, v);
  return {
    scheduled: total,
    requests: answered,
    rps: seconds > 0 ? answered / seconds : 0,
    seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max,
    errors,
    statusCodes,
    dispatchLagMaxMs: lagMax,
    maxRssMb,
    ...(firstError ? { firstError } : {}),
  };
}
