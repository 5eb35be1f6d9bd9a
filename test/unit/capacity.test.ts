// The capacity model (src/operations/capacity): monotonic in its inputs, its steps where the
// formulas put them, its inputs refused with the flag named, and the committed docs/capacity.md
// block and docs/capacity.svg equal to what the model gives now (`npm run capacity:docs`).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { capacityCommand, parseCapacityArgs } from '../../src/operations/capacity.js';
import { CAPACITY_MD, CAPACITY_SVG, capacitySvg, withGeneratedBlock } from '../../src/operations/capacity/docs.js';
import {
  ASSUMED,
  CapacityInputError,
  DEFAULTS,
  planCapacity,
  TIERS,
  writesPerPrimary,
  type CapacityInput,
  type CapacityPlan,
} from '../../src/operations/capacity/model.js';
import { group } from '../../src/operations/capacity/render.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const plan = (users: number, over: Partial<CapacityInput> = {}) => planCapacity({ ...DEFAULTS, users, ...over });

/** Every count and price of a plan, for the monotonicity checks. */
const figures = (p: CapacityPlan) => ({
  peakRps: p.load.peakRps,
  apiInstances: p.apiInstances,
  shards: p.shards.count,
  replicas: p.postgres.replicas,
  postgres: p.postgres.servers,
  pgbouncer: p.pgbouncer.count,
  redis: p.redis.nodes,
  rabbitmq: p.rabbitmq.nodes,
  cost: p.cost.total,
});

function expectNonDecreasing(plans: CapacityPlan[]) {
  for (let i = 1; i < plans.length; i++) {
    const a = figures(plans[i - 1]!);
    const b = figures(plans[i]!);
    for (const k of Object.keys(a) as (keyof typeof a)[]) expect(b[k], `${k} at step ${i}`).toBeGreaterThanOrEqual(a[k]);
  }
}

async function run(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await capacityCommand(args, (l) => lines.push(l));
  return { code, out: lines.join('\n') };
}

describe('capacity model', () => {
  it('never needs less of anything for more users, more requests or a higher peak', () => {
    const users = [1, 10, 1000, 50_000, 100_000, 539_000, 540_000, 999_999, 1_000_000, 1_000_001, 3e6, 1e7, 3e7, 1e8, 1e9];
    expectNonDecreasing(users.map((u) => plan(u)));
    expectNonDecreasing([1, 10, 50, 200, 1000].map((d) => plan(1e6, { requestsPerUserDay: d })));
    expectNonDecreasing([1, 2, 3, 5, 10].map((p) => plan(1e6, { peakFactor: p })));
    expectNonDecreasing([0, 10, 100, 1000].map((t) => plan(1e6, { tasksPerUser: t })));
    // A faster instance or a looser target never needs more instances.
    const faster = [500, 1562, 3000, 10_000].map((r) => plan(1e7, { rpsPerInstance: r }).apiInstances);
    expect([...faster].sort((a, b) => b - a)).toEqual(faster);
  });

  it("gives the seed's three tiers the figures docs/capacity.md shows", () => {
    const [small, medium, large] = TIERS.map((u) => plan(u));
    expect(small!.load.peakRps).toBeCloseTo((100_000 * 50 * 3) / 86_400, 6);
    expect([small, medium, large].map((p) => p!.apiInstances)).toEqual([2, 3, 20]);
    expect([small, medium, large].map((p) => p!.shards.count)).toEqual([1, 1, 10]);
    expect([small, medium, large].map((p) => p!.postgres.servers)).toEqual([2, 2, 20]);
    expect([small, medium, large].map((p) => p!.cost.total)).toEqual([585, 615, 3855]);
    // The cost is the sum of its parts.
    for (const p of [small!, medium!, large!]) {
      const { total, ...parts } = p.cost;
      expect(Object.values(parts).reduce((a, b) => a + b, 0)).toBe(total);
    }
  });

  it('steps at the boundaries its formulas give', () => {
    // Instances: 2 (the minimum) until the peak passes one instance at the target, then 3.
    const perInstance = DEFAULTS.rpsPerInstance * DEFAULTS.cpuTarget;
    const usersAtOne = Math.floor((perInstance * 86_400) / (DEFAULTS.requestsPerUserDay * DEFAULTS.peakFactor));
    expect(plan(usersAtOne).apiInstances).toBe(2);
    expect(plan(usersAtOne + 1).apiInstances).toBe(3);
    // Shards by rows: 100 tasks per user, 100M tasks a shard.
    const usersPerShard = ASSUMED.maxTasksPerShard.value / DEFAULTS.tasksPerUser;
    expect(plan(usersPerShard).shards).toMatchObject({ count: 1, byRows: 1 });
    expect(plan(usersPerShard + 1).shards).toMatchObject({ count: 2, byRows: 2 });
    // Shards by writes, with rows out of the way: one primary's write budget, then two.
    const usersAtWriteLimit = Math.floor((writesPerPrimary(DEFAULTS.cpuTarget) * 86_400) / (0.2 * DEFAULTS.requestsPerUserDay * DEFAULTS.peakFactor));
    expect(plan(usersAtWriteLimit, { tasksPerUser: 0 }).shards.byWrites).toBe(1);
    expect(plan(usersAtWriteLimit + 10, { tasksPerUser: 0 }).shards).toMatchObject({ count: 2, byWrites: 2, byRows: 0 });
    // Never below the floors: two instances, one shard, a replica per shard, two PgBouncers, three broker nodes.
    expect(figures(plan(1))).toMatchObject({ apiInstances: 2, shards: 1, replicas: 1, pgbouncer: 2, redis: 2, rabbitmq: 3 });
  });

  it('flags what the code cannot do yet, and only then', () => {
    expect(plan(1e6).notes).toEqual([]);
    const notes = plan(1e7).notes.join('\n');
    expect(notes).toContain('10 shards');
    expect(notes).toContain('2 Redis primaries');
  });

  it('refuses bad input naming the flag', () => {
    const bad: [Partial<CapacityInput>, RegExp][] = [
      [{ users: 0 }, /^--users must be a whole number from 1/],
      [{ users: 1.5 }, /^--users/],
      [{ users: 2e10 }, /^--users/],
      [{ rpsPerInstance: 0 }, /^--rps-per-instance must be/],
      [{ requestsPerUserDay: -1 }, /^--requests-per-user-day must be/],
      [{ peakFactor: 0.5 }, /^--peak-factor must be a number from 1/],
      [{ cpuTarget: 1.5 }, /^--cpu-target must be/],
      [{ cpuTarget: Number.NaN }, /^--cpu-target/],
      [{ tasksPerUser: -3 }, /^--tasks-per-user/],
    ];
    for (const [over, message] of bad) expect(() => plan(1000, over), JSON.stringify(over)).toThrow(message);
    expect(() => plan(1000, { users: 0 })).toThrow(CapacityInputError);
  });
});

describe('task-api capacity', () => {
  it('parses every flag, with --flag value and --flag=value', () => {
    const { input, json } = parseCapacityArgs([
      '--users',
      '2500000',
      '--rps-per-instance=900',
      '--requests-per-user-day',
      '20',
      '--peak-factor',
      '2.5',
      '--cpu-target',
      '0.5',
      '--tasks-per-user',
      '40',
      '--json',
    ]);
    expect(json).toBe(true);
    expect(input).toEqual({ users: 2_500_000, rpsPerInstance: 900, requestsPerUserDay: 20, peakFactor: 2.5, cpuTarget: 0.5, tasksPerUser: 40 });
    expect(parseCapacityArgs(['--users', '1e6']).input).toEqual({ ...DEFAULTS, users: 1_000_000 });
  });

  it('prints the plan as text, and the same plan as JSON', async () => {
    const text = await run(['--users', '1000000']);
    expect(text.code).toBe(0);
    expect(text.out).toContain('capacity for 1,000,000 users');
    expect(text.out).toMatch(/API instances \(target holds with one down\)\s+3$/m);
    expect(text.out).toMatch(/total\s+\$615$/m);
    const json = await run(['--users', '1000000', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual(JSON.parse(JSON.stringify(plan(1_000_000))));
  });

  it('uses the flags: a faster instance needs fewer instances, more requests more', async () => {
    const base = plan(1e7).apiInstances;
    const fast = JSON.parse((await run(['--users', '1e7', '--json', '--rps-per-instance', '3124'])).out) as CapacityPlan;
    const busy = JSON.parse((await run(['--users', '1e7', '--json', '--requests-per-user-day', '100'])).out) as CapacityPlan;
    expect(fast.apiInstances).toBeLessThan(base);
    expect(busy.apiInstances).toBeGreaterThan(base);
  });

  it.each([
    [[], '--users is required'],
    [['--users'], '--users needs a value'],
    [['--users', '--json'], '--users needs a value'],
    [['--users', 'many'], '--users must be a number (got "many")'],
    [['--users', '-5'], '--users must be a number (got "-5")'],
    [['--users', '0'], '--users must be a whole number from 1 to 10,000,000,000 (got 0)'],
    [['--users', '10', '--users', '20'], '--users given twice'],
    [['--users', '10', '--peak-factor', '0.5'], '--peak-factor must be a number from 1 to 1000 (got 0.5)'],
    [['--users', '10', '--rps-per-instance', '0'], '--rps-per-instance must be'],
    [['--users', '10', '--requests-per-user-day', 'x'], '--requests-per-user-day must be a number (got "x")'],
    [['--users', '10', '--cpu-target', '2'], '--cpu-target must be a fraction above 0 and at most 1 (got 2)'],
    [['--users', '10', '--verbose'], 'unknown argument "--verbose"'],
    [['--users', '10', 'extra'], 'unknown argument "extra"'],
  ])('%j: exit 2, says what is wrong, prints the usage', async (args, message) => {
    const { code, out } = await run(args);
    expect(code).toBe(2);
    expect(out.split('\n')[0]).toContain(`capacity: ${message}`);
    expect(out).toContain('usage: task-api capacity --users N');
  });
});

describe('docs/capacity.md and docs/capacity.svg', () => {
  it('hold what the model gives now (run `npm run capacity:docs` after changing it)', () => {
    const md = readFileSync(`${ROOT}/${CAPACITY_MD}`, 'utf8');
    expect(withGeneratedBlock(md), 'docs/capacity.md is out of date: npm run capacity:docs').toBe(md);
    expect(capacitySvg(), 'docs/capacity.svg is out of date: npm run capacity:docs').toBe(readFileSync(`${ROOT}/${CAPACITY_SVG}`, 'utf8'));
  });

  it('the chart is an SVG with both panels and a point per tier', () => {
    const svg = capacitySvg();
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('Servers by users');
    expect(svg).toContain('Monthly cost');
    for (const u of TIERS) expect(svg).toContain(`$${group(plan(u).cost.total)}</text>`);
  });
});
