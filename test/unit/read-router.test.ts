// The read/write router's decisions, on stand-in servers: which reads may go to a replica
// (read-your-writes, lag, down), what is recorded after a write, and the pieces it is made of.
import { afterEach, describe, expect, it } from 'vitest';
import type { Database, Db } from '../../src/infra/db/database.js';
import { formatLsn, lsnKey, parseLsn, parseLsnKey, PRIMARY_ONLY } from '../../src/infra/db/lsn.js';
import { MemoryUserLsnStore } from '../../src/infra/db/lsn-store.js';
import { PoolGate, PoolTimeoutError } from '../../src/infra/db/pool-gate.js';
import { replicaName } from '../../src/infra/db/read-replicas.js';
import { lagOf } from '../../src/infra/db/replicas.js';
import { routeReads, type RoutedDatabase, type RouteReason } from '../../src/infra/db/router.js';
import { isDatabaseUnavailable } from '../../src/shared/db-errors.js';

describe('WAL positions', () => {
  it('parse, print and compare as 64-bit numbers', () => {
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(formatLsn(parseLsn('16/B374D848')!)).toBe('16/B374D848');
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn(null)).toBeUndefined();
    expect(parseLsn('nonsense')).toBeUndefined();
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(PRIMARY_ONLY);
    // The fixed-width form the Redis script compares: string order is number order.
    const a = parseLsn('9/FFFFFFFF')!;
    const b = parseLsn('A/0')!;
    expect(lsnKey(a) < lsnKey(b)).toBe(true);
    expect(parseLsnKey(lsnKey(b))).toBe(b);
    expect(parseLsnKey('zz')).toBeUndefined();
  });
});

describe('lagOf', () => {
  const samples = [
    { at: 1000, lsn: 100n },
    { at: 2000, lsn: 200n },
    { at: 3000, lsn: 300n },
  ];
  it('is 0 for a replica at or past the latest position of the primary', () => {
    expect(lagOf(samples, 300n, 3500)).toBe(0);
    expect(lagOf(samples, 999n, 3500)).toBe(0);
  });
  it('counts from the first position the replica lacks', () => {
    expect(lagOf(samples, 250n, 3500)).toBe(500);
    expect(lagOf(samples, 100n, 3500)).toBe(1500);
  });
  it('is unknown for a replica behind everything kept', () => {
    expect(lagOf(samples, 50n, 3500)).toBeUndefined();
    expect(lagOf([], 50n, 3500)).toBeUndefined();
  });
});

describe('PoolGate', () => {
  it('admits up to max at once, then in order, and fails a wait past the timeout', async () => {
    const gate = new PoolGate(2, 50);
    const r1 = await gate.acquire();
    await gate.acquire();
    const third = gate.acquire();
    expect(gate.stats).toEqual({ inUse: 2, waiting: 1 });
    r1();
    r1(); // twice is once
    const r3 = await third;
    expect(gate.stats).toEqual({ inUse: 2, waiting: 0 });
    const late = gate.acquire();
    await expect(late).rejects.toBeInstanceOf(PoolTimeoutError);
    await expect(gate.acquire()).rejects.toMatchObject({ code: 'POOL_TIMEOUT' });
    r3();
    expect(gate.stats).toEqual({ inUse: 1, waiting: 0 });
  });

  it('a pool timeout is a database unavailable (503), as are refused and lost connections', () => {
    expect(isDatabaseUnavailable(new PoolTimeoutError(10))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: '08P01' }) }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('shutdown'), { code: '57P01' }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('unique'), { code: '23505' }))).toBe(false);
    expect(isDatabaseUnavailable(new Error('plain'))).toBe(false);
  });
});

describe('MemoryUserLsnStore', () => {
  it('keeps the larger position per user until it expires', async () => {
    const store = new MemoryUserLsnStore({ ttlMs: 40 });
    expect(await store.get('u1')).toBeNull();
    await store.record('u1', 200n);
    await store.record('u1', 100n);
    expect(await store.get('u1')).toBe(200n);
    await new Promise((r) => setTimeout(r, 60));
    expect(await store.get('u1')).toBeNull();
    await store.record('u2', 5n);
    expect(store.size).toBe(1);
  });
});

describe('replicaName', () => {
  it('is host:port, never the credentials', () => {
    expect(replicaName('postgres://user:secret@10.0.0.5:5433/tasks?sslmode=require', 0)).toBe('10.0.0.5:5433');
    expect(replicaName('postgres://replica/tasks', 1)).toBe('replica');
    expect(replicaName('postgres:///tasks', 2)).toBe('replica-3');
  });
});

/** A stand-in server: answers the router's polls from fields the test sets. */
class FakeServer {
  lsn = '0/100';
  standby = true;
  down = false;
  readonly db = { server: this } as unknown as Db;
  readonly database: Database;
  constructor(readonly name: string) {
    const query = async <T>(text: string): Promise<T[]> => {
      await Promise.resolve();
      if (this.down) throw Object.assign(new Error(`connect ECONNREFUSED ${name}`), { code: 'ECONNREFUSED' });
      if (text.includes('pg_current_wal_lsn')) return [{ lsn: this.lsn }] as T[];
      return [{ standby: this.standby, lsn: this.lsn }] as T[];
    };
    this.database = {
      kind: 'postgres',
      db: this.db,
      raw: { query, script: async () => undefined },
      rawTransaction: async () => undefined as never,
      queryCount: () => 0,
      read: (_u, fn) => fn(this.db),
      wrote: async () => undefined,
      ping: async () => undefined,
      close: async () => undefined,
    };
  }
}

describe('routeReads', () => {
  let routed: RoutedDatabase | undefined;
  afterEach(async () => {
    await routed?.close();
    routed = undefined;
  });

  function setup(maxLagMs = 1000) {
    const primary = new FakeServer('primary');
    const r1 = new FakeServer('r1');
    const r2 = new FakeServer('r2');
    const store = new MemoryUserLsnStore({ ttlMs: 60_000 });
    const reasons: string[] = [];
    const replicaReports: [string, boolean, number | undefined][] = [];
    routed = routeReads(
      primary.database,
      [
        { name: 'r1', database: r1.database },
        { name: 'r2', database: r2.database },
      ],
      {
        pollMs: 60_000, // polled by the test
        maxLagMs,
        store,
        recorder: {
          routed: (target, reason: RouteReason) => reasons.push(`${target}:${reason}`),
          replica: (name, up, lag) => replicaReports.push([name, up, lag]),
        },
      },
    );
    const r = routed;
    /** Where a read of the user goes: the server's name. */
    const where = (userId: string) => r.read(userId, async (db) => (db as unknown as { server: FakeServer }).server.name);
    return { primary, r1, r2, store, reasons, replicaReports, routed: r, where };
  }

  it('reads on the primary until the replicas have been polled, then on the replicas in turn', async () => {
    const { routed, where, reasons } = setup();
    routed.monitor.stop();
    // Before any poll answered nothing vouches for a replica (start() polls once; wait for it).
    await routed.monitor.poll();
    expect(new Set([await where('a'), await where('a'), await where('a')])).toEqual(new Set(['r1', 'r2']));
    expect(reasons.at(-1)).toBe('replica:no-recent-write');
  });

  it("sends a user's reads to the primary until a replica has replayed the user's write", async () => {
    const { routed, where, reasons, primary, r1, r2 } = setup();
    await routed.monitor.poll();
    primary.lsn = '0/500';
    await routed.wrote('writer');
    expect(await where('writer')).toBe('primary');
    expect(reasons.at(-1)).toBe('primary:behind-user-write');
    // Someone who did not write still reads on a replica.
    expect(['r1', 'r2']).toContain(await where('reader'));
    r2.lsn = '0/500';
    await routed.monitor.poll();
    for (let i = 0; i < 4; i++) expect(await where('writer')).toBe('r2');
    expect(reasons.at(-1)).toBe('replica:caught-up');
    r1.lsn = '0/600';
    await routed.monitor.poll();
    expect(new Set([await where('writer'), await where('writer')])).toEqual(new Set(['r1', 'r2']));
  });

  it('records "primary only" for a write whose position cannot be read', async () => {
    const { routed, where, primary, store } = setup();
    await routed.monitor.poll();
    primary.down = true;
    await routed.wrote('w');
    expect(await store.get('w')).toBe(PRIMARY_ONLY);
    primary.down = false;
    expect(await where('w')).toBe('primary');
  });

  it('leaves out a replica that is down, lagging or not a standby, and takes it back when it is fine', async () => {
    const { routed, where, reasons, r1, r2, primary, replicaReports } = setup(1000);
    await routed.monitor.poll();
    r1.down = true;
    await routed.monitor.poll();
    for (let i = 0; i < 3; i++) expect(await where('x')).toBe('r2');
    expect(replicaReports).toContainEqual(['r1', false, undefined]);
    r2.standby = false;
    await routed.monitor.poll();
    expect(await where('x')).toBe('primary');
    expect(reasons.at(-1)).toBe('primary:replicas-down');
    r1.down = false;
    r2.standby = true;
    await routed.monitor.poll();
    expect(new Set([await where('x'), await where('x')])).toEqual(new Set(['r1', 'r2']));
    // Lagging: the primary moves on, the replicas stay behind for longer than the maximum.
    primary.lsn = '0/900';
    await routed.monitor.poll();
    await new Promise((r) => setTimeout(r, 30));
    primary.lsn = '0/901';
    await routed.monitor.poll();
    expect(['r1', 'r2']).toContain(await where('x')); // 30 ms behind: fine
    await new Promise((r) => setTimeout(r, 1100));
    await routed.monitor.poll();
    expect(await where('x')).toBe('primary');
    expect(reasons.at(-1)).toBe('primary:replicas-lagging');
    const lagging = replicaReports.filter(([name]) => name === 'r1').at(-1)!;
    expect(lagging[1]).toBe(true);
    expect(lagging[2]).toBeGreaterThan(1);
    r1.lsn = '0/901';
    await routed.monitor.poll();
    expect(await where('x')).toBe('r1');
  });

  it("measures lag from the new primary's positions after a failover, whose timeline forked behind the old one's last", async () => {
    const { routed, where, reasons, r1, r2, primary } = setup(1000);
    primary.lsn = '0/900';
    r1.lsn = '0/900';
    r2.lsn = '0/900';
    await routed.monitor.poll();
    await routed.wrote('writer');
    // The old primary is gone; r2 leads from 0/880 (what it had received), r1 follows it.
    r2.standby = false;
    primary.lsn = '0/880';
    r1.lsn = '0/880';
    await new Promise((r) => setTimeout(r, 1100));
    await routed.monitor.poll();
    expect(await where('reader')).toBe('r1');
    expect(reasons.at(-1)).toBe('replica:no-recent-write');
    // A write recorded on the old timeline past the new primary's position: that user reads on
    // the primary (never a replica that may lack it) until a replica is past it or it expires.
    expect(await where('writer')).toBe('primary');
    primary.lsn = '0/A00';
    r1.lsn = '0/A00';
    await routed.monitor.poll();
    expect(await where('writer')).toBe('r1');
  });

  it('does a read again on the primary when the replica fails under it, and leaves the replica out', async () => {
    const { routed, reasons, r2 } = setup();
    await routed.monitor.poll();
    r2.down = true; // not polled yet: still thought readable
    const lost = Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' });
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      answers.push(
        await routed.read('x', async (db) => {
          const server = (db as unknown as { server: FakeServer }).server;
          if (server === r2) throw lost;
          return server.name;
        }),
      );
    }
    expect(answers).not.toContain('r2');
    expect(answers).toContain('primary');
    expect(reasons).toContain('primary:replica-failed');
    expect(routed.monitor.readable().map((r) => r.name)).toEqual(['r1']);
    // A failure of the statement itself is the caller's: not retried.
    await expect(
      routed.read('x', async () => {
        throw Object.assign(new Error('syntax'), { code: '42601' });
      }),
    ).rejects.toMatchObject({ code: '42601' });
  });
});
