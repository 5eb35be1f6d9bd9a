// The repetitions: each one measures a ceiling, then the API rows compared with it, in turn.
import type { Redis } from 'ioredis';
import { createTask, getTask, health, listPage, mixed, patchTask } from './api.js';
import { dbCeiling, httpCeiling, pgbench, PGBENCH } from './ceilings.js';
import { runLoad, type LoadResult, type Req } from './load.js';
import type { Pools } from './pools.js';
import type { Rows, RunFigures } from './report.js';
import { sleep } from './procs.js';
import { deleteKeys, type ApiInstance } from './setup.js';
import type { Statement } from './sql-capture.js';

export interface SuiteInput {
  rows: Rows;
  api: ApiInstance;
  /** The same build with METRICS_ENABLED=false (not in quick runs). */
  apiNoMetrics: ApiInstance | undefined;
  pools: Pools;
  specs: { list: string; get: string; create: string; patch: string };
  pgbenchList: Statement | undefined;
  databaseUrl: string;
  redis: Redis;
  redisPrefix: string;
  durationS: number;
  connections: number;
  poolMax: number;
  runs: number;
  /** Waits (bounded) until the API's relay has published the events the last row wrote. */
  drainOutbox: () => Promise<void>;
}

export const ROW = {
  http: 'ceiling: node:http',
  health: 'GET /health/live',
  hit: 'list 20, cache HIT',
  dbList: 'ceiling: DB list 20',
  miss: 'list 20, cache MISS',
  dbGet: 'ceiling: DB get one',
  get: 'GET one task (MISS)',
  dbCreate: 'ceiling: DB create tx',
  create: 'POST create task',
  dbPatch: 'ceiling: DB patch tx',
  patch: 'PATCH task',
  mixed: 'mixed 80/15/5',
  pgbench: 'reference: pgbench list 20',
  healthOff: 'GET /health/live, metrics off',
  hitOff: 'list 20 HIT, metrics off',
} as const;

export function defineRows(rows: Rows, withOff: boolean, withPgbench: boolean): void {
  rows.define(ROW.http, 'ceiling', { note: 'node:http fixed JSON body, child process' });
  rows.define(ROW.health, 'api', { ceiling: ROW.http, bar: { op: '>=', value: 0.95, label: 'GET /health/live vs node:http' } });
  rows.define(ROW.hit, 'api', { ceiling: ROW.http, bar: { op: '>=', value: 0.6, label: 'list of 20, cache hit, vs node:http' } });
  rows.define(ROW.dbList, 'ceiling', { note: 'captured list SQL (page 1 and cursor pages), postgres.js, same pool and concurrency' });
  rows.define(ROW.miss, 'api', { ceiling: ROW.dbList, bar: { op: '>=', value: 0.8, label: 'list of 20, cache miss, vs DB ceiling' } });
  rows.define(ROW.dbGet, 'ceiling');
  rows.define(ROW.get, 'api', { ceiling: ROW.dbGet });
  rows.define(ROW.dbCreate, 'ceiling', { note: 'task insert + outbox insert in one transaction' });
  rows.define(ROW.create, 'api', { ceiling: ROW.dbCreate, bar: { op: '>=', value: 0.7, label: 'create task vs DB ceiling of the same transaction' } });
  rows.define(ROW.dbPatch, 'ceiling', { note: 'update + outbox insert in one transaction' });
  rows.define(ROW.patch, 'api', { ceiling: ROW.dbPatch, note: 'no If-Match' });
  rows.define(ROW.mixed, 'api', { note: '40% list page 1, 40% get, 15% create, 5% patch, every user' });
  if (withPgbench && PGBENCH) rows.define(ROW.pgbench, 'reference', { ceiling: ROW.dbList, note: 'one user, parameters inlined, clients = pool size' });
  if (withOff) {
    rows.define(ROW.healthOff, 'api', { ceiling: ROW.http });
    rows.define(ROW.hitOff, 'api', { ceiling: ROW.http });
  }
}

const figures = (r: LoadResult): RunFigures => ({
  requests: r.requests,
  rps: r.rps,
  p50: r.p50,
  p99: r.p99,
  errors: r.errors,
  maxRssMb: r.maxRssMb,
  statusCodes: r.statusCodes,
  ...(r.cache ? { cache: r.cache } : {}),
});

/** Warms `count` first pages (each answered once, so the next answer is a HIT). */
async function warm(api: ApiInstance, pools: Pools, count: number): Promise<Req[]> {
  const reqs = Array.from({ length: Math.min(count, pools.sessions.length) }, (_, user) => listPage(pools, { user }));
  for (const r of reqs) {
    const res = await fetch(api.url + r.path, { headers: r.headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`warm-up ${r.path}: ${res.status}`);
  }
  return reqs;
}

export async function runSuite(s: SuiteInput, progress: (msg: string) => void): Promise<void> {
  const { rows, api, pools } = s;
  const base = { durationS: s.durationS, connections: s.connections };
  const load = (target: ApiInstance, next: (i: number) => Req, extra: { amount?: number; cache?: boolean } = {}) =>
    runLoad({ ...base, url: target.url, pid: target.pid, next, ...extra });
  // Only the instance being measured runs; ceilings run with both paused.
  const instances = [api, s.apiNoMetrics].filter((x): x is ApiInstance => x !== undefined);
  const only = (target: ApiInstance | undefined) => {
    for (const inst of instances) {
      if (inst === target) inst.resume();
      else inst.pause();
    }
  };
  // Requests a row's load generator abandoned at its end are still being answered for a moment:
  // let them finish before pausing an instance (a paused one would finish them later, e.g. store
  // cache entries after the cache was emptied) and before emptying the cache.
  const settle = () => sleep(750);
  const cold = async () => {
    await settle();
    await deleteKeys(s.redis, `${s.redisPrefix}cache:*`);
  };
  const db = async (name: string, file: string) => {
    await settle();
    only(undefined);
    const r = await dbCeiling(file, s.durationS * 1000).finally(() => only(api));
    rows.add(name, { requests: r.ops, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, ...(r.firstError ? { firstError: r.firstError } : {}) });
  };
  const api1 = async (name: string, ceiling: string, result: Promise<LoadResult>) => {
    const r = await result;
    rows.add(name, figures(r));
    rows.ratio(name, r.rps / rows.latestRps(ceiling));
    progress(`${name}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99} ms, ratio ${(r.rps / rows.latestRps(ceiling)).toFixed(3)}`);
  };

  only(api);
  for (let rep = 1; rep <= s.runs; rep++) {
    progress(`repetition ${rep}/${s.runs}`);
    // A cold response cache for every repetition: its entries become unreachable.
    await cold();

    await settle();
    only(undefined);
    const http = await httpCeiling(s.durationS, s.connections).finally(() => only(api));
    rows.add(ROW.http, figures(http));
    progress(`${ROW.http}: ${http.rps.toFixed(0)} req/s`);
    await api1(ROW.health, ROW.http, load(api, health));
    const hot = await warm(api, pools, 50);
    await api1(ROW.hit, ROW.http, load(api, (i) => hot[i % hot.length]!, { cache: true }));

    await db(ROW.dbList, s.specs.list);
    // The HIT row's warm entries are first pages too: cold again.
    await cold();
    await api1(ROW.miss, ROW.dbList, load(api, (i) => listPage(pools, pools.pages[i]!), { amount: pools.pages.length, cache: true }));

    await db(ROW.dbGet, s.specs.get);
    await cold();
    await api1(ROW.get, ROW.dbGet, load(api, (i) => getTask(pools, pools.gets[i]!), { amount: pools.gets.length, cache: true }));

    await db(ROW.dbCreate, s.specs.create);
    await api1(ROW.create, ROW.dbCreate, load(api, (i) => createTask(pools, i % pools.sessions.length)));
    await s.drainOutbox();

    await db(ROW.dbPatch, s.specs.patch);
    await api1(ROW.patch, ROW.dbPatch, load(api, (i) => patchTask(pools, pools.patches[i % pools.patches.length]!)));
    await s.drainOutbox();

    const m = await load(api, (i) => mixed(pools, i));
    rows.add(ROW.mixed, figures(m));
    progress(`${ROW.mixed}: ${m.rps.toFixed(0)} req/s, errors ${m.errors}`);
    await s.drainOutbox();

    if (s.pgbenchList && rows.rows.has(ROW.pgbench)) {
      await settle();
      only(undefined);
      const p = await pgbench(s.databaseUrl, s.pgbenchList, s.poolMax, s.durationS).finally(() => only(api));
      rows.add(ROW.pgbench, { requests: Math.round(p.tps * s.durationS), rps: p.tps, p50: NaN, p99: NaN, errors: 0 });
      rows.ratio(ROW.pgbench, p.tps / rows.latestRps(ROW.dbList));
    }

    if (s.apiNoMetrics) {
      // Same rows on the metrics-on and the metrics-off instance, back to back.
      const off = s.apiNoMetrics;
      await settle();
      only(off);
      try {
        await api1(ROW.healthOff, ROW.http, load(off, health));
        const hotOff = await warm(off, pools, 50);
        await api1(ROW.hitOff, ROW.http, load(off, (i) => hotOff[i % hotOff.length]!, { cache: true }));
      } finally {
        await settle();
        only(api);
      }
    }
  }
}
