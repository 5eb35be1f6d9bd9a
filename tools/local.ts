// Loopback plumbing shared by the benchmark (bench/), the load test (loadtest/) and the tests'
// process helpers (test/helpers/process.ts): free ports on 127.0.0.1, the environment of a
// production `task-api serve` child listening there, and waiting for it to answer.
// Node built-ins only: the tests' global setup loads this too.
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOOPBACK = '127.0.0.1';

/** A TCP port free on 127.0.0.1 when asked (the OS picks it; the listener is closed again). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Two different free loopback ports (asked one after the other, the OS may hand out one twice). */
export async function twoFreePorts(): Promise<[number, number]> {
  const first = await freePort();
  let second = await freePort();
  while (second === first) second = await freePort();
  return [first, second];
}

export interface LoopbackServe {
  /** PORT, on 127.0.0.1. */
  port: number;
  /** METRICS_PORT, on 127.0.0.1: never the default 9464, instances run side by side. */
  metricsPort: number;
  /** LOG_LEVEL. */
  logLevel: string;
  /** DATA_DIR (embedded database, generated signing key); unset: the server's default. */
  dataDir?: string;
  /** SHUTDOWN_DRAIN_MS; unset: the server's default. */
  drainMs?: number;
}

/**
 * The settings of a production `task-api serve` listening on loopback ports, in this order. PATH,
 * the services, rate limits and the rest are the caller's to add.
 */
export function serveEnv(s: LoopbackServe): Record<string, string> {
  return {
    NODE_ENV: 'production',
    LOG_LEVEL: s.logLevel,
    HOST: LOOPBACK,
    PORT: String(s.port),
    METRICS_HOST: LOOPBACK,
    METRICS_PORT: String(s.metricsPort),
    ...(s.dataDir === undefined ? {} : { DATA_DIR: s.dataDir }),
    ...(s.drainMs === undefined ? {} : { SHUTDOWN_DRAIN_MS: String(s.drainMs) }),
  };
}

export interface PollOptions {
  timeoutMs: number;
  /** True once the process that should answer is gone: polling stops. */
  exited: () => boolean;
  /** The pause after the given (0-based) failed attempt; 100 ms unless said. */
  pauseMs?: (attempt: number) => number;
  /** A bound on each request; none unless said. */
  requestTimeoutMs?: number;
}

/**
 * GETs url until it answers 2xx ('ok'), `exited()` turns true ('exited') or timeoutMs have passed
 * ('timeout'); what each means, and what to do then, is the caller's.
 */
export async function pollUntilOk(url: string, o: PollOptions): Promise<'ok' | 'exited' | 'timeout'> {
  const deadline = Date.now() + o.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (o.exited()) return 'exited';
    try {
      const res = await fetch(url, o.requestTimeoutMs === undefined ? {} : { signal: AbortSignal.timeout(o.requestTimeoutMs) });
      await res.arrayBuffer();
      if (res.ok) return 'ok';
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) return 'timeout';
    await sleep(o.pauseMs?.(attempt) ?? 100);
  }
}
