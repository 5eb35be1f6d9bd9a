// The API rows: what each request is, per row.
import type { Binding } from './sql-capture.js';
import { CREATE_BODY, PATCH_BODY } from './sql-capture.js';
import type { Req } from './load.js';
import type { Page, Pools, TaskRef } from './pools.js';

const auth = (pools: Pools, user: number) => ({ authorization: `Bearer ${pools.sessions[user]!.token}` });
const pagePath = (p: Page) => (p.cursor ? `/v1/tasks?cursor=${encodeURIComponent(p.cursor)}` : '/v1/tasks');
const createBody = JSON.stringify(CREATE_BODY);
const patchBody = JSON.stringify(PATCH_BODY);

export const health = (): Req => ({ method: 'GET', path: '/health/live' });

export const listPage = (pools: Pools, p: Page): Req => ({ method: 'GET', path: pagePath(p), headers: auth(pools, p.user) });

export const getTask = (pools: Pools, t: TaskRef): Req => ({ method: 'GET', path: `/v1/tasks/${t.taskId}`, headers: auth(pools, t.user) });

export const createTask = (pools: Pools, user: number): Req => ({ method: 'POST', path: '/v1/tasks', headers: auth(pools, user), body: createBody });

export const patchTask = (pools: Pools, t: TaskRef): Req => ({ method: 'PATCH', path: `/v1/tasks/${t.taskId}`, headers: auth(pools, t.user), body: patchBody });

/** Deterministic 0..99 for request i. */
const dice = (i: number) => (Math.imul(i ^ 0x9e3779b9, 0x85ebca6b) >>> 0) % 100;

/** 80% reads (half a user's first page, half one task), 15% creates, 5% updates, across every user. */
export function mixed(pools: Pools, i: number): Req {
  const d = dice(i);
  const users = pools.sessions.length;
  if (d < 40) return listPage(pools, { user: i % users });
  if (d < 80) return getTask(pools, pools.gets[i % pools.gets.length]!);
  if (d < 95) return createTask(pools, i % users);
  return patchTask(pools, pools.patches[i % pools.patches.length]!);
}

/** The DB ceilings' replay lists, in the API rows' order. */
export function ceilingPools(pools: Pools) {
  const uid = (u: number) => pools.sessions[u]!.userId;
  const list = pools.pages.map((p): { t: string; b: Binding } =>
    p.keyset ? { t: 'listCursor', b: { userId: uid(p.user), keysetAt: p.keyset[0], keysetId: p.keyset[1] } } : { t: 'list', b: { userId: uid(p.user) } },
  );
  const get = pools.gets.map((t) => ({ t: 'get', b: { userId: uid(t.user), taskId: t.taskId } }));
  const create = pools.sessions.map((s) => ({ t: 'create', b: { userId: s.userId } }));
  const patch = pools.patches.map((t) => ({ t: 'patch', b: { userId: uid(t.user), taskId: t.taskId } }));
  return { list, get, create, patch };
}
