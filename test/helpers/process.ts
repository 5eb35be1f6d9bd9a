// Runs the built CLI as a real process on a free loopback port, for tests that need sockets,
// signals and exit codes.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../src/node-flags.js';
import { freePort, pollUntilOk, serveEnv, twoFreePorts } from '../../tools/local.js';

export { freePort };

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerProcess {
  url: string;
  /** GET /metrics on the server's own metrics port (a free one, unless env sets METRICS_PORT). */
  metricsUrl: string;
  proc: ChildProcess;
  output: () => string;
  /** Parsed JSON log lines so far. */
  logs: () => Record<string, unknown>[];
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export function runCli(args: string[], env: Record<string, string>, input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runScript('dist/cli.js', args, { PATH: process.env.PATH ?? '', ...env }, input);
}

/** A built script of the project (dist/cli.js, build/loadtest/run.js, ...) to its end. */
export function runScript(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [script, ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(input ?? '');
  });
}

/** A running `task-api <command>`: its combined output, parsed JSON log lines, and exit. */
export interface CliProcess {
  proc: ChildProcess;
  pid: number;
  output: () => string;
  logs: () => Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running: () => boolean;
}

/** Spawns the built CLI with the server's node flags, production settings and env on top. */
function spawnCli(args: string[], env: Record<string, string>): CliProcess {
  const proc = spawn(process.execPath, [...NODE_FLAGS, 'dist/cli.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', LOG_LEVEL: 'info', ...env },
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    proc,
    pid: proc.pid!,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    running: () => proc.exitCode === null && proc.signalCode === null,
  };
}

/** `task-api worker` with env, its metrics on a free loopback port. */
export async function startWorker(env: Record<string, string>): Promise<CliProcess> {
  return spawnCli(['worker'], { METRICS_HOST: '127.0.0.1', METRICS_PORT: String(await freePort()), ...env });
}

/** `task-api serve [args]` with env on free ports. */
export async function startServer(env: Record<string, string>, args: string[] = []): Promise<ServerProcess> {
  // Never the default metrics port 9464: test processes run side by side.
  const [port, metricsPort] = await twoFreePorts();
  const cli = spawnCli(['serve', ...args], { ...serveEnv({ port, metricsPort, logLevel: 'info' }), ...env });
  const { proc } = cli;
  const exited = cli.exited.then((e) => e.code);
  const url = `http://127.0.0.1:${port}`;
  const started = await pollUntilOk(`${url}/health/live`, { timeoutMs: 60_000, exited: () => proc.exitCode !== null });
  if (started === 'exited') throw new Error(`server exited with ${proc.exitCode}:\n${cli.output()}`);
  if (started === 'timeout') {
    proc.kill('SIGKILL');
    throw new Error(`server did not start within 60 s:\n${cli.output()}`);
  }
  return {
    url,
    metricsUrl: `http://127.0.0.1:${env.METRICS_PORT ?? metricsPort}/metrics`,
    proc,
    output: cli.output,
    logs: cli.logs,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export async function jsonRequest(url: string, method: string, body?: unknown, token?: string) {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
}
