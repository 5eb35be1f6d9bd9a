// "Exactly the SQL" of each endpoint: the built service and repository (dist/) run once per
// endpoint on a postgres.js client whose `debug` hook records every statement with its
// parameters. The DB ceiling replays those statements with a plain client, substituting the
// values that must vary (user, task, keyset, fresh ids).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { ROOT } from './procs.js';

export interface Statement {
  text: string;
  params: (string | null)[];
  /** For each parameter holding substitutable values: its index and the roles found in it. */
  subs: { i: number; roles: string[] }[];
}

export interface Captured {
  name: string;
  transaction: boolean;
  statements: Statement[];
  /** role -> the value used at capture time (replaced at replay). */
  values: Record<string, string>;
  /** Roles that get a fresh UUIDv7 on every replay. */
  fresh: string[];
}

/** The values one replay substitutes, by role. */
export type Binding = Record<string, string>;

interface Actor {
  userId: string;
  role: 'user' | 'admin';
}
interface TaskLike {
  id: string;
  version: number;
}
interface TasksServiceLike {
  list(actor: Actor, q: { cursor?: string; limit?: number }): Promise<{ data: TaskLike[]; nextCursor: string | null }>;
  get(actor: Actor, id: string): Promise<TaskLike>;
  create(actor: Actor, input: { title: string; priority?: string; tags?: string[] }): Promise<TaskLike>;
  update(actor: Actor, id: string, input: { title?: string }, ifMatch: undefined): Promise<TaskLike>;
}

const dist = (p: string) => pathToFileURL(path.join(ROOT, 'dist', p)).href;
const CONTROL = /^\s*(begin|commit|rollback|savepoint|release)\b/i;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** Bodies the API rows send; the capture runs the service with the same input. */
export const CREATE_BODY = { title: 'Benchmark task', priority: 'high', tags: ['bench', 'work'] } as const;
export const PATCH_BODY = { title: 'Benchmark task, renamed' } as const;

export interface CaptureInput {
  databaseUrl: string;
  poolMax: number;
  userId: string;
  /** A task of that user (get, patch). */
  taskId: string;
  /** Keyset of a page boundary of that user: [createdAt ISO, id] and its cursor. */
  keyset: [string, string];
  cursor: string;
}

export async function captureAll(input: CaptureInput): Promise<Record<string, Captured>> {
  let log: { text: string; params: (string | null)[]; types: number[] }[] = [];
  const client = postgres(input.databaseUrl, {
    max: 1,
    prepare: true,
    onnotice: () => undefined,
    debug: (_conn: number, text: string, params: unknown[], types: unknown[]) => {
      log.push({
        text,
        params: params.map((p) => (p === null || p === undefined ? null : String(p as string))),
        types: (types ?? []).map((t) => Number(t)),
      });
    },
  });
  try {
    const { drizzle } = await import('drizzle-orm/postgres-js');
    const { TasksRepository } = (await import(dist('modules/tasks/repository.js'))) as { TasksRepository: new (db: unknown) => unknown };
    const { TasksService, ShardRepositories } = (await import(dist('modules/tasks/service.js'))) as {
      TasksService: new (repos: unknown, changed: (userId: string) => Promise<void>) => TasksServiceLike;
      ShardRepositories: new (shards: unknown, repositoryOf: () => unknown) => unknown;
    };
    const { singleShard } = (await import(dist('infra/shards/set.js'))) as { singleShard: (database: unknown) => unknown };
    // The connection's first query also fetches the array types (postgres.js fetch_types):
    // done before recording, so that only the endpoint's statements are captured.
    await client.unsafe('select 1');
    log = [];
    // One database, not sharded (no TASK_SHARDS), as the suite's API instances run: the main
    // shard's repository on the capture's client.
    const db = drizzle(client);
    const service = new TasksService(new ShardRepositories(singleShard({ db }), () => new TasksRepository(db)), async () => undefined);
    const actor: Actor = { userId: input.userId, role: 'user' };

    const record = async (name: string, values: Record<string, string>, fn: () => Promise<unknown>): Promise<Captured> => {
      log = [];
      const result = await fn();
      const all = log;
      log = [];
      const transaction = all.some((s) => CONTROL.test(s.text));
      const fresh: string[] = [];
      if (result && typeof result === 'object' && 'id' in result && name === 'create') values = { ...values, taskId: (result as TaskLike).id };
      const known = new Set(Object.values(values));
      const statements = all
        .filter((s) => !CONTROL.test(s.text))
        .map((s) => {
          // Other UUIDs in the parameters (the new task's and the event's ids) are fresh ones.
          for (const p of s.params) {
            for (const u of p?.match(UUID) ?? []) {
              if (!known.has(u)) {
                const role = `fresh${fresh.length}`;
                values = { ...values, [role]: u };
                fresh.push(role);
                known.add(u);
              }
            }
          }
          return s;
        })
        .map((s) => ({
          text: s.text,
          params: s.params,
          subs: s.params
            .map((p, i) => ({ i, roles: Object.keys(values).filter((r) => p !== null && p.includes(values[r]!)) }))
            .filter((x) => x.roles.length > 0),
        }));
      if (name === 'create') fresh.unshift('taskId');
      return { name, transaction, statements, values, fresh };
    };

    const out: Record<string, Captured> = {};
    out.list = await record('list', { userId: input.userId }, () => service.list(actor, {}));
    out.listCursor = await record('listCursor', { userId: input.userId, keysetAt: input.keyset[0], keysetId: input.keyset[1] }, () =>
      service.list(actor, { cursor: input.cursor }),
    );
    out.get = await record('get', { userId: input.userId, taskId: input.taskId }, () => service.get(actor, input.taskId));
    out.create = await record('create', { userId: input.userId }, () => service.create(actor, { ...CREATE_BODY, tags: [...CREATE_BODY.tags] }));
    out.patch = await record('patch', { userId: input.userId, taskId: input.taskId }, () => service.update(actor, input.taskId, { ...PATCH_BODY }, undefined));
    for (const c of Object.values(out)) if (c.statements.length === 0) throw new Error(`sql-capture: nothing recorded for ${c.name}`);
    return out;
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** The parameters of one replay. */
/**
 * The parameters of one replay. They are the texts postgres.js sent; the replaying client must be
 * configured like the API's (drizzle's transparent json/date serialisers, see applyDriverTypes).
 */
export function bind(st: Statement, values: Record<string, string>, binding: Binding): unknown[] {
  if (st.subs.length === 0) return st.params;
  const params: unknown[] = st.params.slice();
  for (const { i, roles } of st.subs) {
    let p = params[i] as string;
    for (const r of roles) {
      const to = binding[r];
      if (to !== undefined) p = p.split(values[r]!).join(to);
    }
    params[i] = p;
  }
  return params;
}

/** Inlines parameters as literals (pgbench scripts). */
export function inline(st: Statement): string {
  return st.text.replace(/\$(\d+)/g, (_m, n: string) => {
    const v = st.params[Number(n) - 1];
    return v === null || v === undefined ? 'NULL' : `'${v.replace(/'/g, "''")}'`;
  });
}

/** The client settings drizzle applies to the API's postgres.js client (transparent date and json (de)serialisers). */
export async function applyDriverTypes(client: postgres.Sql): Promise<void> {
  const { drizzle } = await import('drizzle-orm/postgres-js');
  drizzle(client);
}
