// --scale: list p99 of the same users' first page as the table grows (10k, 1M, 10M tasks; grown
// with `seed` under other prefixes), and page 500 vs page 1 of one user's cursor walk. The API
// runs with CACHE_ENABLED=false here, so every request reaches the database.
import { runLoad } from './load.js';
import type { Options } from './options.js';
import type { Rows } from './report.js';
import { login, migrate, recreateDatabase, seed, startApi, type ApiSettings, type Session } from './setup.js';
import { median } from './stats.js';

const MEASURED_USERS = 10;
const TASKS_PER_USER = 1000;
const DEEP_TASKS = 10_100;
const DEEP_PAGE = 500;

export const scaleRow = (total: number) => `scale: list page 1 @ ${total >= 1e6 ? `${total / 1e6}M` : `${total / 1e3}k`} tasks`;
export const SCALE_FIGURE = (top: number) => `list p99 @ ${top >= 1e6 ? `${top / 1e6}M` : `${top / 1e3}k`} vs @ 10k`;
export const DEEP = { page1: 'scale: page 1 (deep user)', page500: `scale: page ${DEEP_PAGE} (cursor)`, figure: `page ${DEEP_PAGE} p99 vs page 1` };

export async function runScale(o: Options, settings: Omit<ApiSettings, 'cache' | 'metrics' | 'relay'>, rows: Rows, progress: (m: string) => void): Promise<void> {
  const steps = [10_000, 1_000_000, 10_000_000].filter((t) => t === 10_000 || t <= o.scaleMax);
  progress(`scale: steps ${steps.join(', ')} total tasks (database ${settings.databaseUrl} recreated)`);
  await recreateDatabase(settings.databaseUrl);
  await migrate(settings.databaseUrl);
  await seed(settings.databaseUrl, MEASURED_USERS, TASKS_PER_USER, 'scale', 600_000);
  let total = MEASURED_USERS * TASKS_PER_USER;
  const api = await startApi({ ...settings, cache: false, metrics: true, relay: false });
  try {
    const users: Session[] = await login(api.url, 'scale', MEASURED_USERS);
    const base = { url: api.url, pid: api.pid, durationS: o.durationS, connections: o.connections };
    for (const step of steps) {
      if (step > total) {
        const more = Math.ceil((step - total) / TASKS_PER_USER);
        progress(`scale: growing to ${step} tasks (${more} users x ${TASKS_PER_USER}); this can take a while`);
        const t0 = Date.now();
        await seed(settings.databaseUrl, more, TASKS_PER_USER, `grow-${step}`, 6 * 3600_000);
        total += more * TASKS_PER_USER;
        progress(`scale: grown to ${total} tasks in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      }
      const name = scaleRow(step);
      rows.define(name, 'api', { note: `${MEASURED_USERS} users x ${TASKS_PER_USER} tasks measured, cache off` });
      for (let rep = 0; rep < o.runs; rep++) {
        const r = await runLoad({ ...base, next: (i) => ({ method: 'GET', path: '/v1/tasks', headers: { authorization: `Bearer ${users[i % users.length]!.token}` } }) });
        rows.add(name, { requests: r.requests, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, maxRssMb: r.maxRssMb, statusCodes: r.statusCodes });
        progress(`${name}: p99 ${r.p99} ms (${r.rps.toFixed(0)} req/s)`);
      }
    }
    const top = steps[steps.length - 1]!;
    if (top > 10_000) {
      const p99 = (n: number) => median(rows.rows.get(scaleRow(n))!.runs.map((r) => r.p99));
      rows.define(SCALE_FIGURE(top), 'figure', { bar: { op: '<=', value: 1.2, label: 'list p99 with 10M tasks vs with 10k tasks' } });
      rows.ratio(SCALE_FIGURE(top), p99(top) / p99(10_000));
    }

    progress(`scale: one user with ${DEEP_TASKS} tasks, walking the cursor to page ${DEEP_PAGE}`);
    await seed(settings.databaseUrl, 1, DEEP_TASKS, 'deep', 600_000);
    const [deep] = await login(api.url, 'deep', 1);
    const headers = { authorization: `Bearer ${deep!.token}` };
    let path = '/v1/tasks';
    for (let page = 1; page < DEEP_PAGE; page++) {
      const res = await fetch(api.url + path, { headers });
      const body = (await res.json()) as { nextCursor: string | null; data: unknown[] };
      if (res.status !== 200 || !body.nextCursor) throw new Error(`cursor walk stopped at page ${page}: ${res.status}`);
      path = `/v1/tasks?cursor=${encodeURIComponent(body.nextCursor)}`;
    }
    rows.define(DEEP.page1, 'api');
    rows.define(DEEP.page500, 'api');
    for (let rep = 0; rep < o.runs; rep++) {
      for (const [name, p] of [
        [DEEP.page1, '/v1/tasks'],
        [DEEP.page500, path],
      ] as const) {
        const r = await runLoad({ ...base, next: () => ({ method: 'GET', path: p, headers }) });
        rows.add(name, { requests: r.requests, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, maxRssMb: r.maxRssMb, statusCodes: r.statusCodes });
        progress(`${name}: p99 ${r.p99} ms (${r.rps.toFixed(0)} req/s)`);
      }
    }
    const p99 = (n: string) => median(rows.rows.get(n)!.runs.map((r) => r.p99));
    rows.define(DEEP.figure, 'figure', { bar: { op: '<=', value: 1.2, label: 'page 500 of a user list (cursor) p99 vs page 1' } });
    rows.ratio(DEEP.figure, p99(DEEP.page500) / p99(DEEP.page1));
  } finally {
    await api.stop();
  }
}
