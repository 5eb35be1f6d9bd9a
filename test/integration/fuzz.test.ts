// Property-based fuzzing of every route of docs/openapi.json (fast-check), on PostgreSQL and Redis
// with real users. Properties: (a) never a 5xx; (b) every answer is one the document promises
// (a documented status, a body valid against its schema); (c) what a write acknowledged is what
// every later read returns, field by field: GET by id, the list at the place its sort puts the
// task (every page, cursors followed), and through the response cache (each read twice).
//
// Bounded for CI (FUZZ_RUNS cases in all, 3000 by default, well under a minute). A long run:
// `npm run fuzz` (FUZZ_RUNS=100000). A failure prints fast-check's report: the seed, the path and
// the shrunk counterexample. Replay it with FUZZ_SEED=<seed> FUZZ_PATH=<path> and
// `-t '<the test's name>'` (the pools of ids then hold less than in the full run: the
// counterexample itself is the surer guide).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import type { TaskBody } from '../helpers/bodies.js';
import { operations, type JsonSchema, type Operation } from '../helpers/fuzz/openapi.js';
import { planOf } from '../helpers/fuzz/requests.js';
import { FuzzRunner, type Account } from '../helpers/fuzz/runner.js';
import { fuzzed, valid } from '../helpers/fuzz/schema-arb.js';
import { createDiffs, patchDiffs, type Json, type ListFilter } from '../helpers/fuzz/tasks-model.js';
import { dateTimeString, instantOf } from '../helpers/fuzz/values.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 3000);
/** CI runs one fixed seed (a red build is the change's, not the draw's); elsewhere each run draws one. */
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : process.env.CI ? 11 : Math.floor(Math.random() * 2 ** 31);
const PATH = process.env.FUZZ_PATH;

/** Share of the cases each operation gets (1 unless said): the task routes most, account removal least. */
const WEIGHT: Record<string, number> = {
  'POST /v1/tasks': 4,
  'PATCH /v1/tasks/{id}': 4,
  'GET /v1/tasks': 4,
  'GET /v1/tasks/{id}': 2,
  'DELETE /v1/tasks/{id}': 1.5,
  'GET /v1/admin/tasks': 2,
  'POST /v1/webhooks': 2,
  'PATCH /v1/webhooks/{id}': 2,
  'PATCH /v1/users/{id}': 1.5,
  'DELETE /v1/users/me': 0.3,
  'DELETE /v1/users/{id}': 0.5,
  'GET /health': 0.3,
  'GET /health/live': 0.2,
  'GET /.well-known/jwks.json': 0.2,
};
/** The stateful round trip's share of FUZZ_RUNS (each of its cases is a few writes and many reads). */
const ROUND_TRIP_SHARE = 0.1;

const totalWeight = operations.reduce((sum, op) => sum + (WEIGHT[op.key] ?? 1), 0);
const runsOf = (op: Operation) => Math.max(5, Math.round((RUNS * (1 - ROUND_TRIP_SHARE) * (WEIGHT[op.key] ?? 1)) / totalWeight));
const timeoutFor = (runs: number) => 60_000 + runs * 200;

const params = <T>(numRuns: number): fc.Parameters<T> => ({ seed: SEED, numRuns, ...(PATH ? { path: PATH } : {}) });

let t: TestApp;
let runner: FuzzRunner;
const started = Date.now();

beforeAll(async () => {
  // Webhook targets on loopback are allowed so that no case waits for DNS; a small body limit
  // makes the 413 cheap to reach.
  t = await createTestApp({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', BODY_LIMIT_BYTES: '65536' } });
  runner = await FuzzRunner.start(t);
  console.error(`fuzz: seed ${SEED}, FUZZ_RUNS ${RUNS} (replay: FUZZ_SEED=${SEED} [FUZZ_PATH=<path from the report>])`);
});

afterAll(async () => {
  if (runner) {
    const s = runner.stats;
    const statuses = [...s.statuses].sort(([a], [b]) => a - b).map(([k, v]) => `${k}:${v}`).join(' ');
    console.error(
      `fuzz: seed ${SEED}: ${s.cases} cases, ${s.requests} requests, 5xx ${s.serverErrors}, mismatches ${s.mismatches}, ${((Date.now() - started) / 1000).toFixed(1)} s; statuses ${statuses}`,
    );
  }
  await t?.close();
});

describe('every route, every parameter: no 5xx, only documented answers, writes read back as acknowledged', () => {
  for (const op of operations) {
    const runs = runsOf(op);
    it(`${op.key} (${runs} cases)`, async () => {
      await fc.assert(
        fc.asyncProperty(planOf(op), (plan) => runner.run(op, plan)),
        params(runs),
      );
    }, timeoutFor(runs));
  }
});

// ---- the stateful round trip: a sequence of writes on one user's tasks, each followed by reads of
// the whole list in some sort and filter, page by page, compared with the acknowledged tasks.

const bodyOf = (key: string) => operations.find((o) => o.key === key)!.body as JsonSchema;
const TAGS = ['a', 'b', 'work', '\u00e9t\u00e9', 'x y', 'with,comma', '"q"', '{b}', 'NULL', '\\'];
const STATUSES = ['todo', 'in_progress', 'done'];
const PRIORITIES = ['low', 'medium', 'high', 'urgent'];

/** Mostly within the schema (every character, every date edge), sometimes past an edge. */
const taskBody = (schema: JsonSchema) =>
  fc.tuple(fc.oneof({ weight: 5, arbitrary: valid(schema) }, { weight: 1, arbitrary: fuzzed(schema) }), fc.option(fc.subarray(TAGS, { minLength: 1, maxLength: 3 }), { freq: 2 })).map(([body, tags]) => {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return body as Json;
    return tags ? { ...(body as Json), tags } : (body as Json);
  });

type Command = { kind: 'create'; body: Json } | { kind: 'patch'; pick: number; body: Json } | { kind: 'delete'; pick: number };
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: taskBody(bodyOf('POST /v1/tasks')).map((body): Command => ({ kind: 'create', body })) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('patch' as const), pick: fc.nat(), body: taskBody(bodyOf('PATCH /v1/tasks/{id}')) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
);

const SORTS = ['createdAt', '-createdAt', 'dueAt', '-dueAt', 'priority', '-priority', 'updatedAt', '-updatedAt'];
const validDate = dateTimeString.filter((d) => instantOf(d) !== undefined);
const listQuery = fc.record(
  {
    sort: fc.constantFrom(...SORTS),
    limit: fc.oneof({ weight: 1, arbitrary: fc.constant(1) }, { weight: 6, arbitrary: fc.integer({ min: 2, max: 10 }) }, { weight: 4, arbitrary: fc.constantFrom(20, 50, 100) }),
    status: fc.subarray(STATUSES, { minLength: 1 }).map((s) => s.join(',')),
    priority: fc.subarray(PRIORITIES, { minLength: 1 }).map((s) => s.join(',')),
    tag: fc.constantFrom(...TAGS),
    dueBefore: validDate,
    dueAfter: validDate,
  },
  { requiredKeys: ['sort', 'limit'] },
);

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const nearBound = fc.option(fc.record({ which: fc.constantFrom('dueBefore' as const, 'dueAfter' as const), pick: fc.nat(), digits: fc.constantFrom('', '0', '0001', '1', '5', '999999') }), { freq: 3 });

/** Whether the database can keep every string of the input as it is and the date is one instant in years 1-9999. */
function storable(input: Json): boolean {
  const strings: string[] = [];
  const collect = (v: unknown) => {
    if (typeof v === 'string') strings.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(collect);
  };
  collect(input);
  if (strings.some((s) => s.includes('\u0000') || LONE_SURROGATE.test(s))) return false;
  return input.dueAt === undefined || input.dueAt === null || instantOf(input.dueAt as string) !== undefined;
}

describe('round trip: every write, read back by id, through the cache, and at its place in every sort, filter and page', () => {
  let owner: Account;
  const runs = Math.max(10, Math.round(RUNS * ROUND_TRIP_SHARE));

  beforeAll(async () => {
    owner = await runner.newAccount();
  });

  const mine = () => [...runner.tasks.entries()].filter(([, v]) => v.owner === owner.session.user.id);

  async function apply(c: Command): Promise<void> {
    const token = owner.session.accessToken;
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const own = mine();
    if (c.kind === 'create' && own.length >= 25) c = { kind: 'delete', pick: 0 };
    if (c.kind !== 'create' && own.length === 0) return;
    switch (c.kind) {
      case 'create': {
        const res = await runner.inject({ method: 'POST', url: '/v1/tasks', headers: auth, payload: JSON.stringify(c.body) });
        if (res.statusCode === 201) {
          const ack = res.json<TaskBody>();
          runner.tasks.set(ack.id, { owner: owner.session.user.id, ack });
          if (!storable(c.body)) runner.mismatch(`accepted what cannot be stored as sent: ${JSON.stringify(c.body)} -> ${res.body}`);
          const diffs = createDiffs(c.body, ack);
          if (diffs.length) runner.mismatch(`create acknowledged other than asked (${JSON.stringify(c.body)}):\n  ${diffs.join('\n  ')}`);
          await runner.readBack(token, `/v1/tasks/${ack.id}`, ack, 'created task');
        } else if (res.statusCode !== 400 && res.statusCode !== 413) runner.mismatch(`create answered ${res.statusCode}: ${res.body}`);
        return;
      }
      case 'patch': {
        const [id, before] = own[c.pick % own.length]!;
        const res = await runner.inject({ method: 'PATCH', url: `/v1/tasks/${id}`, headers: auth, payload: JSON.stringify(c.body) });
        if (res.statusCode === 200) {
          const ack = res.json<TaskBody>();
          runner.tasks.set(id, { owner: owner.session.user.id, ack });
          if (!storable(c.body)) runner.mismatch(`accepted what cannot be stored as sent: ${JSON.stringify(c.body)} -> ${res.body}`);
          const diffs = patchDiffs(before.ack, c.body, ack);
          if (diffs.length) runner.mismatch(`patch acknowledged other than asked (${JSON.stringify(c.body)}):\n  ${diffs.join('\n  ')}`);
          await runner.readBack(token, `/v1/tasks/${id}`, ack, 'patched task');
        } else if (res.statusCode !== 400 && res.statusCode !== 413) runner.mismatch(`patch answered ${res.statusCode}: ${res.body}`);
        return;
      }
      case 'delete': {
        const [id] = own[c.pick % own.length]!;
        const res = await runner.inject({ method: 'DELETE', url: `/v1/tasks/${id}`, headers: { authorization: auth.authorization } });
        runner.tasks.delete(id);
        runner.goneTasks.push(id);
        if (res.statusCode !== 204) runner.mismatch(`delete answered ${res.statusCode}: ${res.body}`);
        return;
      }
    }
  }

  it(`create, patch and delete; then GET, every page of the list and the admin list agree (${runs} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 4 }), listQuery, fc.boolean(), nearBound, async (commands, query, adminToo, near) => {
        runner.stats.cases++;
        for (const c of commands) await apply(c);
        // A bound on or just past a task's own due date (the edge a filter's comparison can get wrong).
        const dated = mine().filter(([, v]) => v.ack.dueAt !== null);
        if (near && dated.length > 0) query[near.which] = `${dated[near.pick % dated.length]![1].ack.dueAt!.slice(0, -1)}${near.digits}Z`;
        const filter: ListFilter = { status: query.status, priority: query.priority, tag: query.tag, dueBefore: query.dueBefore, dueAfter: query.dueAfter };
        const sent = Object.entries(query).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)] as [string, string]);
        const want = runner.expectedList(owner.session.user.id, filter, query.sort);
        await runner.walk(owner.session.accessToken, '/v1/tasks', sent, want, `list ${JSON.stringify(query)}`);
        if (adminToo) {
          const all = runner.expectedList(owner.session.user.id, {}, '-createdAt');
          const withOwner = all.map((task) => ({ ...task, owner: { id: owner.session.user.id, email: owner.session.user.email, role: 'user' } }));
          await runner.walk(runner.admin.session.accessToken, '/v1/admin/tasks', [['userId', owner.session.user.id], ['limit', String(query.limit)]], withOwner, 'admin list');
        }
      }),
      params(runs),
    );
  }, timeoutFor(runs * 20));
});
