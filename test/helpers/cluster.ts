// One `task-api cluster` for a test file: started in a temporary directory before the file's
// tests, and stopped whatever happens after them (cluster stop, then SIGKILL to any recorded pid
// still running). Also the checks every topology shares: nginx -t on what it runs, and the API's
// contract walked through its public URL.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { openDatabase, type Database } from '../../src/infra/db/database.js';
import { nginxLayout, testNginxConfig } from '../../src/operations/cluster/nginx.js';
import { findBinary, isAlive, tcpOpen } from '../../src/operations/cluster/processes.js';
import { running, stopProcess } from '../../src/operations/cluster/roles.js';
import { readState, stateFile } from '../../src/operations/cluster/state.js';
import { httpInjector } from './http-inject.js';
import { runCli } from './process.js';
import { runScenario } from './scenario.js';

// The scenario and the checks send more than the seed's limits allow one client a second.
const high = { points: 100000, duration: 60 };
export const HIGH_LIMITS_ENV = {
  EDGE_RATE_LIMIT: '100000',
  EDGE_RATE_BURST: '100000',
  RATE_LIMIT_POINTS: '1000000',
  RATE_LIMIT_DURATION: '60',
  RATE_LIMIT_POLICIES: JSON.stringify({ 'auth-ip': high, 'login-account-ip': high, 'login-account': high, 'password-change': high }),
};

export interface Brief {
  name: string;
  url: string;
  pid: number | null;
  alive: boolean;
}

export interface ClusterFixture<S> {
  dir: () => string;
  /** What `cluster start` printed. */
  started: () => S;
  cluster: (...args: string[]) => ReturnType<typeof runCli>;
  status: () => Promise<S>;
  /** `cluster stop`, then checks that every process it knew is gone and its port free. */
  stopAndCheck: () => Promise<void>;
}

/** Registers the file's beforeAll (cluster start with `startArgs`) and afterAll (stop, clean up). */
export function clusterFixture<S>(prefix: string, startArgs: string[], env: Record<string, string> = HIGH_LIMITS_ENV): ClusterFixture<S> {
  let dir = '';
  let started: S | undefined;
  const cluster = (...args: string[]) => runCli(['cluster', ...args, '--dir', dir], env);
  const status = async () => {
    const res = await cluster('status');
    expect(res.code, res.stderr).toBe(0);
    return JSON.parse(res.stdout) as S;
  };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), prefix));
    const res = await cluster('start', ...startArgs);
    if (res.code !== 0) throw new Error(`cluster start ${startArgs.join(' ')} exited with ${res.code}:\n${res.stderr}`);
    started = JSON.parse(res.stdout) as S;
  }, 240_000);
  afterAll(async () => {
    if (dir && existsSync(stateFile(dir))) {
      if (readState(dir).processes.some(running)) await cluster('stop');
      for (const rec of readState(dir).processes) if (running(rec)) await stopProcess(rec, 'kill');
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 180_000);
  return {
    dir: () => dir,
    started: () => started!,
    cluster,
    status,
    stopAndCheck: async () => {
      const s = (await status()) as { processes: (Brief & { port: number })[] };
      const res = await cluster('stop');
      expect(res.code, res.stderr).toBe(0);
      for (const p of s.processes) {
        expect(isAlive(p.pid!), `${p.name} (pid ${p.pid})`).toBe(false);
        expect(await tcpOpen(p.port), `${p.name} port ${p.port}`).toBe(false);
      }
    },
  };
}

/** nginx -t on the configuration the cluster under `dir` runs with. */
export function expectNginxAccepts(dir: string): void {
  const checked = testNginxConfig(nginxLayout(path.join(dir, 'nginx')), findBinary('nginx', process.env.PATH ?? '')!);
  expect(checked.output).toMatch(/test is successful/);
}

/** The whole API scenario (test/helpers/scenario.ts) over HTTP through `publicUrl`. */
export async function walkContract(publicUrl: string, primaryUrl: string, tasksUrl?: string | string[]): Promise<void> {
  const database: Database = await openDatabase({ url: primaryUrl, poolMax: 2, prepare: true, dataDir: ':memory:' });
  // One tasks database (split), or every shard's (the tasks data sharded by owner).
  const urls = tasksUrl === undefined ? [] : Array.isArray(tasksUrl) ? tasksUrl : [tasksUrl];
  const tasksDatabases = await Promise.all(urls.map((url) => openDatabase({ url, poolMax: 2, prepare: true, dataDir: ':memory:' })));
  try {
    await runScenario({ app: httpInjector(publicUrl), database, ...(tasksDatabases.length > 0 ? { tasksDatabases } : {}) });
  } finally {
    await database.close();
    await Promise.all(tasksDatabases.map((d) => d.close()));
  }
}
