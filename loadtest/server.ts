// Without --url: the production build (`node dist/cli.js serve`) on a free loopback port, with a
// temporary DATA_DIR, stopped by its pid at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../src/node-flags.js';
import { pollUntilOk, serveEnv, twoFreePorts } from '../tools/local.js';

/** The repository root: build/loadtest/server.js sits two levels below it. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LocalServer {
  url: string;
  pid: number;
  /** What the instance runs on, for the report. */
  stack: { database: 'postgresql' | 'embedded'; redis: 'redis' | 'memory' };
  /** The environment the suite set (secrets and URLs left out). */
  settings: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Rate limits for one load-generating IP: every VU registers and logs in from 127.0.0.1, and
 * anonymous requests are counted per IP, so the defaults (10/s, 10 auth requests a minute) would
 * refuse almost everything. The limiter stays on (its Redis round trips are part of the cost).
 */
export const LOCAL_RATE_LIMITS = {
  RATE_LIMIT_POINTS: '1000000',
  RATE_LIMIT_POLICIES: JSON.stringify({ 'auth-ip': { points: 1000000, duration: 60, blockDuration: 0 } }),
};

export async function startLocalServer(extraEnv: Record<string, string>, log: (line: string) => void): Promise<LocalServer> {
  const cli = path.join(ROOT, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found: run npm run build (npm run loadtest does)`);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'task-api-loadtest-'));
  const [port, metricsPort] = await twoFreePorts();
  const fromEnv = (name: string) => (process.env[name] ? { [name]: process.env[name] } : {});
  const inherited: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    ...fromEnv('DATABASE_URL'),
    ...fromEnv('DATABASE_POOL_MAX'),
    ...fromEnv('REDIS_URL'),
    ...fromEnv('JWT_PRIVATE_KEY'),
    ...fromEnv('MIGRATE_ON_START'),
  };
  const databaseUrl = extraEnv.DATABASE_URL ?? inherited.DATABASE_URL;
  const settings: Record<string, string> = {
    ...serveEnv({ port, metricsPort, logLevel: 'warn', dataDir, drainMs: 0 }),
    // Its own key prefix: counters and cache entries of other runs are not shared.
    REDIS_KEY_PREFIX: `loadtest:${randomBytes(4).toString('hex')}:`,
    ...LOCAL_RATE_LIMITS,
    // A PostgreSQL database is migrated at start (idempotent) unless MIGRATE_ON_START says otherwise.
    ...(databaseUrl ? { MIGRATE_ON_START: inherited.MIGRATE_ON_START ?? 'true' } : {}),
    ...extraEnv,
  };
  const env = { ...inherited, ...settings };
  const proc: ChildProcess = spawn(process.execPath, [...NODE_FLAGS, cli, 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20000); // the tail, for a start-up failure
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const pid = proc.pid;
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null && pid !== undefined) {
      process.kill(pid, 'SIGTERM');
      const patience = new AbortController();
      const done = await Promise.race([
        exited.then(() => true),
        sleep(10000, false, { signal: patience.signal }).catch(() => false),
      ]);
      patience.abort(); // no timer left behind to hold the process
      if (!done && proc.exitCode === null && proc.signalCode === null) {
        log(`local instance (pid ${pid}) did not stop within 10 s of SIGTERM: SIGKILL`);
        process.kill(pid, 'SIGKILL');
        await exited;
      }
    }
    await rm(dataDir, { recursive: true, force: true });
  };

  const started = await pollUntilOk(`${url}/health/live`, {
    timeoutMs: 60_000,
    exited: () => proc.exitCode !== null || proc.signalCode !== null || pid === undefined,
    pauseMs: (attempt) => Math.min(500, 50 * (attempt + 1)),
    requestTimeoutMs: 2000,
  });
  if (started === 'exited' || pid === undefined) {
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`the local instance exited at start (${proc.exitCode ?? proc.signalCode}):\n${output}`);
  }
  if (started === 'timeout') {
    await stop();
    throw new Error(`the local instance did not answer /health/live within 60 s:\n${output}`);
  }
  const shown = Object.fromEntries(Object.entries(settings).filter(([k]) => !/KEY|PASSWORD|URL/.test(k) || k === 'REDIS_KEY_PREFIX'));
  return {
    url,
    pid,
    stack: { database: env.DATABASE_URL ? 'postgresql' : 'embedded', redis: env.REDIS_URL || env.REDIS_HOST ? 'redis' : 'memory' },
    settings: shown,
    stop,
  };
}
