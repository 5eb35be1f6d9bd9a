// The in-process bus (no AMQP_URL) keeps the promises the broker keeps: a failing handler is
// retried with backoff from a durable schedule (event_retries), dead-lettered past the delivery
// limit, listed and replayed by the operator command, and a failure that cannot be stored leaves
// the batch pending in the outbox. Real PostgreSQL (a database of this file's own) and PGlite.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskOf } from '../helpers/events.js';
import type { Database } from '../../src/infra/db/database.js';
import { InProcessEventBus } from '../../src/events/bus.js';
import type { ConsumeRecorder } from '../../src/observability/recorders.js';
import { OutboxRepository } from '../../src/events/outbox.js';
import { OutboxRelay } from '../../src/events/relay.js';
import { EventRetries } from '../../src/events/retries.js';
import { PoisonMessageError } from '../../src/shared/poison.js';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import { runCli } from '../helpers/process.js';

const silent = pino({ level: 'silent' });

function counting(): ConsumeRecorder & { counts: Record<string, number> } {
  const counts: Record<string, number> = { consumed: 0, failed: 0, dead: 0 };
  return {
    counts,
    consumed: () => void counts.consumed!++,
    failed: () => void counts.failed!++,
    deadLettered: () => void counts.dead!++,
  };
}

function relayFor(database: Database, bus: InProcessEventBus) {
  return new OutboxRelay({
    outbox: new OutboxRepository(database.db),
    publish: (events) => bus.publish(events),
    log: silent,
    pollMs: 20,
    batchSize: 100,
    retentionHours: 24,
    locking: database.kind === 'postgres',
  });
}

async function createTasks(t: TestApp, titles: string[]): Promise<string[]> {
  const s = await register(t.app);
  await t.deliverAccountEvents(); // the account event is not what this test relays
  const ids: string[] = [];
  for (const title of titles) {
    const res = await as(t.app, s.accessToken)({ method: 'POST', url: '/v1/tasks', payload: { title } });
    ids.push(res.json<{ id: string }>().id);
  }
  return ids;
}

const retryRows = (db: Database) =>
  db.raw.query<{ consumer: string; type: string; attempts: number; dead: boolean; reason: string }>(
    'select consumer, type, attempts, dead_at is not null as dead, reason from event_retries order by consumer, created_at',
  );
const pending = async (db: Database) => (await db.raw.query<{ n: number }>('select count(*)::int as n from outbox where published_at is null'))[0]!.n;

/** Runs the bus's retry rounds until `done` or 200 rounds (each waits for the backoff to fall due). */
async function retryUntil(bus: InProcessEventBus, done: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await done()); i++) {
    await bus.retryDue();
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each([
  ['PostgreSQL', false],
  ['PGlite', true],
] as const)('in-process bus on %s', (_name, embedded) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ embedded });
  });
  afterAll(async () => {
    await t.close();
  });

  it('a handler that fails twice takes effect once, on the third delivery; the others are not held up', async () => {
    await t.database.raw.query('delete from event_retries');
    const rec = counting();
    const bus = new InProcessEventBus({ retries: new EventRetries(t.database.db), recorder: rec, log: silent, retryBaseMs: 5, deliveryLimit: 5 });
    const effects: string[] = [];
    const others: string[] = [];
    let failures = 0;
    bus.subscribe('flaky', async (event) => {
      const e = taskOf(event);
      if (e.data.task.title === 'flaky' && failures < 2) {
        failures++;
        throw new Error(`down for the ${failures}. time`);
      }
      effects.push(e.data.task.title);
    });
    bus.subscribe('steady', async (event) => void others.push(taskOf(event).data.task.title));
    await createTasks(t, ['before', 'flaky', 'after']);
    await relayFor(t.database, bus).drain();

    // The batch is published (the failure is stored, not the batch held back) and the other
    // consumer got everything in order at once.
    expect(await pending(t.database)).toBe(0);
    expect(others).toEqual(['before', 'flaky', 'after']);
    expect(effects).toEqual(['before', 'after']);
    expect(await retryRows(t.database)).toEqual([{ consumer: 'flaky', type: 'task.created', attempts: 1, dead: false, reason: 'failed' }]);

    await retryUntil(bus, () => effects.length === 3);
    expect(effects).toEqual(['before', 'after', 'flaky']);
    expect(failures).toBe(2);
    expect(await retryRows(t.database)).toEqual([]);
    expect(rec.counts).toEqual({ consumed: 6, failed: 2, dead: 0 });
    await bus.close();
  });

  it('past the delivery limit the event is a dead letter; a poison event is one at once', async () => {
    await t.database.raw.query('delete from event_retries');
    const rec = counting();
    const bus = new InProcessEventBus({ retries: new EventRetries(t.database.db), recorder: rec, log: silent, retryBaseMs: 5, deliveryLimit: 3 });
    let deliveries = 0;
    bus.subscribe('broken', async (event) => {
      const e = taskOf(event);
      if (e.data.task.title === 'poison') throw new PoisonMessageError('cannot read this', 'malformed');
      deliveries++;
      throw new Error('always down');
    });
    await createTasks(t, ['doomed', 'poison']);
    await relayFor(t.database, bus).drain();
    await retryUntil(bus, async () => (await retryRows(t.database)).every((r) => r.dead));

    expect(deliveries).toBe(3);
    const rows = await retryRows(t.database);
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.reason === 'poison')).toMatchObject({ attempts: 1, dead: true });
    expect(rows.find((r) => r.reason === 'failed')).toMatchObject({ attempts: 3, dead: true });
    expect(rec.counts).toEqual({ consumed: 0, failed: 2, dead: 2 });
    // A dead letter is not retried again.
    await bus.retryDue();
    expect(deliveries).toBe(3);
    await bus.close();
  });

  it('a failure that cannot be stored leaves the batch pending, and the next relay run delivers it', async () => {
    await t.database.raw.query('delete from event_retries');
    const real = new EventRetries(t.database.db);
    let storeDown = true;
    const retries = {
      claimDue: real.claimDue.bind(real),
      succeeded: real.succeeded.bind(real),
      recordFailure: async (...args: Parameters<EventRetries['recordFailure']>) => {
        if (storeDown) throw new Error('database unavailable');
        return real.recordFailure(...args);
      },
    };
    const bus = new InProcessEventBus({ retries, log: silent, retryBaseMs: 5 });
    let up = false;
    const effects: string[] = [];
    bus.subscribe('late', async (event) => {
      const e = taskOf(event);
      if (!up) throw new Error('not yet');
      effects.push(e.data.task.title);
    });
    const [id] = await createTasks(t, ['kept']);
    const relay = relayFor(t.database, bus);
    await expect(relay.runOnce()).rejects.toThrow('database unavailable');
    const [row] = await t.database.raw.query<{ published: boolean; attempts: number }>(
      'select published_at is not null as published, attempts from outbox where aggregate_id = $1',
      [id],
    );
    expect(row).toEqual({ published: false, attempts: 1 });

    storeDown = false;
    up = true;
    await relay.drain();
    expect(effects).toEqual(['kept']);
    expect(await pending(t.database)).toBe(0);
    await bus.close();
  });
});

describe('in-process delivery order', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it("one user's events arrive in order; another user's do not wait behind them", async () => {
    const bus = new InProcessEventBus({ retries: new EventRetries(t.database.db), log: silent });
    const seen: string[] = [];
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    bus.subscribe('order', async (event) => {
      const e = taskOf(event);
      const title = e.data.task.title;
      // a1 is held until b1 has been handled: a sequential bus would never get there.
      if (title === 'a1') await Promise.race([firstHeld, new Promise((r) => setTimeout(r, 10_000))]);
      if (title === 'b1') releaseFirst();
      seen.push(title);
    });
    await createTasks(t, ['a1', 'a2', 'a3']);
    await createTasks(t, ['b1', 'b2']);
    await relayFor(t.database, bus).drain();
    expect(seen.indexOf('b1')).toBeLessThan(seen.indexOf('a1'));
    expect(seen.filter((x) => x.startsWith('a'))).toEqual(['a1', 'a2', 'a3']);
    expect(seen.filter((x) => x.startsWith('b'))).toEqual(['b1', 'b2']);
    await bus.close();
  });
});

describe('the schedule survives the process', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it("a retry stored by one bus is run by the next one, and a running bus's loop runs it by itself", async () => {
    const first = new InProcessEventBus({ retries: new EventRetries(t.database.db), log: silent, retryBaseMs: 5 });
    first.subscribe('notify', async () => {
      throw new Error('crashing soon');
    });
    await createTasks(t, ['survivor']);
    await relayFor(t.database, first).drain();
    await first.close(); // the process ends with the retry still due

    const seen: string[] = [];
    const second = new InProcessEventBus({ retries: new EventRetries(t.database.db), log: silent, retryBaseMs: 5, retryPollMs: 20 });
    second.subscribe('notify', async (event) => void seen.push(taskOf(event).data.task.title));
    await second.start();
    for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    await second.close();
    expect(seen).toEqual(['survivor']);
    expect(await retryRows(t.database)).toEqual([]);
  });

  it('task-api dead-letters lists and replays the in-process dead letters from the database', async () => {
    const bus = new InProcessEventBus({ retries: new EventRetries(t.database.db), log: silent, retryBaseMs: 5 });
    let fixed = false;
    const seen: string[] = [];
    bus.subscribe('ops', async (event) => {
      const e = taskOf(event);
      if (!fixed) throw new PoisonMessageError('unknown shape', 'malformed');
      seen.push(e.data.task.title);
    });
    await createTasks(t, ['rejected once']);
    await relayFor(t.database, bus).drain();

    const env = { DATABASE_URL: t.testDb!.url };
    const listed = await runCli(['dead-letters', 'list', 'ops'], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('dead letters: 1');
    expect(listed.stdout).toContain('"type":"task.created"');
    expect(listed.stdout).toContain('"reason":"poison"');
    expect((await runCli(['dead-letters', 'list', 'ops'], env)).stdout).toContain('dead letters: 1');

    fixed = true;
    const replayed = await runCli(['dead-letters', 'replay', 'ops'], env);
    expect(replayed.stdout).toContain('replayed: 1');
    await retryUntil(bus, () => seen.length === 1);
    expect(seen).toEqual(['rejected once']);
    expect((await runCli(['dead-letters', 'list', 'ops'], env)).stdout).toContain('dead letters: 0');
    await bus.close();
  });
});
