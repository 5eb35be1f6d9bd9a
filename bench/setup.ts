// The system under test: its own PostgreSQL database (dropped and created at start), seeded with
// the CLI's seed command, Redis under a per-run key prefix, and the production build as a child.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { NODE_FLAGS } from '../src/node-flags.js';
import { serveEnv, twoFreePorts } from '../tools/local.js';
import { runToEnd, spawnTracked, waitForUrl } from './procs.js';

export function databaseName(url: string): string {
  const name = new URL(url).pathname.replace(/^\//, '');
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bench database name must be [a-z_][a-z0-9_]*: ${name}`);
  return name;
}

function adminUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}

export async function recreateDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const admin = postgres(adminUrl(url), { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

const cliEnv = (databaseUrl: string): NodeJS.ProcessEnv => ({ PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, NODE_ENV: 'production', LOG_LEVEL: 'warn' });

export async function migrate(databaseUrl: string): Promise<void> {
  const r = await runToEnd(process.execPath, ['dist/cli.js', 'migrate'], cliEnv(databaseUrl), 120_000);
  if (r.code !== 0) throw new Error(`migrate failed (${r.code}):\n${r.stderr}${r.stdout}`);
}

export interface SeedOutcome {
  users: number;
  tasks: number;
  seconds: number;
}

/** `task-api seed`; its progress goes to our stderr, its JSON line is returned. */
export async function seed(databaseUrl: string, users: number, tasksPerUser: number, prefix: string, timeoutMs: number): Promise<SeedOutcome> {
  const args = ['dist/cli.js', 'seed', '--users', String(users), '--tasks-per-user', String(tasksPerUser), '--prefix', prefix];
  const r = await runToEnd(process.execPath, args, cliEnv(databaseUrl), timeoutMs, (s) => {
    for (const line of s.split(/[\r\n]+/)) if (line.trim()) process.stderr.write(`  [seed ${prefix}] ${line.trim()}\n`);
  });
  if (r.code !== 0) throw new Error(`seed failed (${r.code}):\n${r.stderr}${r.stdout}`);
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`seed printed no JSON line:\n${r.stdout}`);
  return JSON.parse(line) as SeedOutcome;
}

export const SEED_PASSWORD = 'seed-password-1';
export const seededEmail = (prefix: string, n: number) => `${prefix}-${n}@example.com`;

export interface ApiInstance {
  url: string;
  metricsUrl: string | undefined;
  child: ChildProcess;
  pid: number;
  output(): string;
  /** SIGSTOP / SIGCONT: an instance not being measured does no background work (its outbox relay polls). */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface ApiSettings {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  poolMax: number;
  jwtPrivateKey: string;
  metrics: boolean;
  cache: boolean;
  /**
   * Run the outbox relay (and the in-process consumers) in this process. The measured API runs
   * without it, as a scaled deployment does (OUTBOX_RELAY_ENABLED=false beside `task-api
   * worker`): the bar for create is the write's own cost (row + outbox + invalidation).
   */
  relay: boolean;
  /** `serve` (default) or `worker` (no HTTP: the relay and the consumers). */
  command?: 'serve' | 'worker';
  /** LOG_LEVEL; warn unless said (--peers: info, one line per request, as the peer logs). */
  logLevel?: string;
  /** Send stdout (the log lines) to /dev/null instead of reading it (--peers: as the peer's). */
  discardStdout?: boolean;
  /** More variables, applied last (--topology: DATABASE_PREPARE, MIGRATE_ON_START). */
  env?: Record<string, string>;
}

/** One signing key for every instance of the run, so tokens from one verify on the others. */
export const newSigningKey = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

// Rate limiting stays on (its Redis round trip per request is measured) with quotas no run reaches.
export const HIGH_LIMITS = {
  RATE_LIMIT_ENABLED: 'true',
  RATE_LIMIT_POINTS: '1000000',
  RATE_LIMIT_DURATION: '1',
  RATE_LIMIT_BLOCK_DURATION: '0',
  RATE_LIMIT_POLICIES: JSON.stringify({
    'auth-ip': { points: 1_000_000, duration: 1, blockDuration: 0 },
    'login-account-ip': { points: 1_000_000, duration: 1, blockDuration: 0 },
    'login-account': { points: 1_000_000, duration: 1, blockDuration: 0 },
  }),
  // Seeded users may hold up to 100,000 tasks (--tasks-per-user) and the runs create more.
  TASKS_PER_USER_MAX: '1000000',
};

export async function startApi(s: ApiSettings): Promise<ApiInstance> {
  const [port, metricsPort] = await twoFreePorts();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'task-api-bench-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    ...serveEnv({ port, metricsPort, logLevel: s.logLevel ?? 'warn', dataDir, drainMs: 0 }),
    METRICS_ENABLED: String(s.metrics),
    CACHE_ENABLED: String(s.cache),
    MIGRATE_ON_START: 'true',
    DATABASE_URL: s.databaseUrl,
    DATABASE_POOL_MAX: String(s.poolMax),
    REDIS_URL: s.redisUrl,
    REDIS_KEY_PREFIX: s.redisPrefix,
    JWT_PRIVATE_KEY: s.jwtPrivateKey,
    // A full run outlasts the default 15 minutes; tokens are minted once, at login.
    JWT_ACCESS_TTL_SECONDS: '86400',
    OUTBOX_RELAY_ENABLED: String(s.relay),
    ...HIGH_LIMITS,
    ...s.env,
  };
  const command = s.command ?? 'serve';
  // BENCH_API_NODE_FLAGS: extra node flags for the `serve` instances only, to profile them (bench/README.md).
  const extra = command === 'serve' ? (process.env.BENCH_API_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean) : [];
  const child = spawnTracked(process.execPath, [...NODE_FLAGS, ...extra, 'dist/cli.js', command], { env, stdio: ['ignore', s.discardStdout ? 'ignore' : 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  // The worker has no HTTP: its metrics port answers once it runs.
  await waitForUrl(command === 'serve' ? `${url}/health` : `http://127.0.0.1:${metricsPort}/metrics`, child, 60_000, () => out);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    url,
    metricsUrl: s.metrics ? `http://127.0.0.1:${metricsPort}/metrics` : undefined,
    child,
    pid: child.pid!,
    output: () => out,
    pause() {
      if (child.exitCode === null) process.kill(child.pid!, 'SIGSTOP');
    },
    resume() {
      if (child.exitCode === null) process.kill(child.pid!, 'SIGCONT');
    },
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGCONT');
        process.kill(child.pid, 'SIGTERM');
      }
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 10_000);
      await exited;
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Session {
  userId: string;
  token: string;
}

/** Logs seeded users 1..n in through POST /v1/auth/login, a few at a time. */
export async function login(apiUrl: string, prefix: string, n: number, parallel = 8): Promise<Session[]> {
  const out: Session[] = new Array<Session>(n);
  let next = 1;
  const worker = async () => {
    for (let i = next++; i <= n; i = next++) {
      const res = await fetch(`${apiUrl}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: seededEmail(prefix, i), password: SEED_PASSWORD }),
      });
      const body = (await res.json()) as { user?: { id: string }; accessToken?: string };
      if (res.status !== 200 || !body.user || !body.accessToken) throw new Error(`login of ${seededEmail(prefix, i)}: ${res.status} ${JSON.stringify(body)}`);
      out[i - 1] = { userId: body.user.id, token: body.accessToken };
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return out;
}

export function redisClient(url: string): Redis {
  return new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
}

/** Deletes every key under prefix + pattern (SCAN, bounded). Returns how many. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) deleted += await redis.unlink(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  return deleted;
}

/**
 * Lets the paused worker publish until the outbox is empty (at most 60 s), then pauses it again:
 * what a write row leaves behind is not charged to the next row.
 */
export async function drainWithWorker(worker: { pause(): void; resume(): void }, databaseUrl: string, progress: (line: string) => void): Promise<void> {
  worker.resume();
  try {
    const waited = await drainOutbox(databaseUrl, 60_000);
    if (waited > 1) progress(`outbox drained by the worker in ${waited.toFixed(1)} s`);
  } finally {
    worker.pause();
  }
}

/** Polls the outbox until nothing is pending or timeoutMs passes; returns the seconds waited. */
export async function drainOutbox(databaseUrl: string, timeoutMs: number): Promise<number> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
  const t0 = Date.now();
  try {
    while (Date.now() - t0 < timeoutMs) {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from outbox where published_at is null`;
      if (!row || row.n === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  return (Date.now() - t0) / 1000;
}
