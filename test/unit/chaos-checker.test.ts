// The chaos run's checker (chaos/checker.ts) on synthetic histories: a clean history passes, and a
// history with each kind of loss (an acknowledged create missing, an acknowledged update
// overwritten by an older value, an event not delivered, a phantom row or value, a duplicate, a
// hung read) fails, so the checker is proven able to fail. Also the fault table's overlap rule,
// the topology's start flags, and the error windows of the report.
import { describe, expect, it } from 'vitest';
import { allowedValues, check, lossCounts, passed } from '../../chaos/checker.js';
import { startFlags } from '../../chaos/cluster.js';
import type { RequestEntry } from '../../chaos/client.js';
import { FAULTS, applicableFaults, mayOverlap, netnsPartitionApplies, type FaultContext } from '../../chaos/faults.js';
import { PATRONI_TIMING } from '../../src/operations/cluster/patroni.js';
import type { ClientHistory, CreateRecord, FinalState, StoredTask, UpdateRecord } from '../../chaos/history.js';
import { faultFigures, requestFigures } from '../../chaos/report.js';
import { roundOrder } from '../../chaos/schedule.js';
import type { ClusterState, ProcessRecord } from '../../src/operations/cluster/state.js';

const U = '00000000-0000-7000-8000-00000000000a';
const id = (n: number) => `00000000-0000-7000-8000-${String(n).padStart(12, '0')}`;
const ok = { kind: 'ok', status: 201 } as const;

const created = (n: number, acked = true): CreateRecord => ({
  marker: `run-c0-${n}`,
  key: `key-${n}`,
  userId: U,
  tries: acked ? [ok] : [{ kind: 'timeout' }],
  ...(acked ? { ackedId: id(n) } : {}),
});
const row = (n: number, description: string | null = null, title = `run-c0-${n}`): StoredTask => ({ id: id(n), userId: U, title, description });
const update = (n: number, seq: number, acked: boolean): UpdateRecord => ({
  taskId: id(n),
  seq,
  key: `u-${n}-${seq}`,
  value: `v${seq}`,
  tries: [acked ? { kind: 'ok', status: 200 } : { kind: 'failed', status: 503 }],
  acked,
});
const history = (h: Partial<ClientHistory>): ClientHistory => ({ creates: [], updates: [], hungReads: 0, ...h });
const final = (rows: StoredTask[], delivered = rows.map((r) => r.id)): FinalState => ({ rows, createdDelivered: new Set(delivered) });

describe('the chaos checker', () => {
  it('passes a clean history: acknowledged creates stored with their events, unacknowledged ones either way, updates at their last acknowledged value', () => {
    const h = history({
      creates: [created(1), created(2), created(3, false), created(4, false)],
      updates: [update(1, 0, true), update(1, 1, true), update(2, 0, true), update(2, 1, false)],
    });
    // 3 was stored without an answer (allowed), 4 was not (allowed); 2's unacknowledged update may have happened.
    const r = check(h, final([row(1, 'v1'), row(2, 'v1'), row(3)]));
    expect(lossCounts(r)).toEqual({ acknowledgedMissing: 0, eventsMissing: 0, phantoms: 0, duplicates: 0, hungReads: 0 });
    expect(passed(r)).toBe(true);
    expect(r.creates).toEqual({ attempted: 4, acknowledged: 2, unacknowledgedPresent: 1, unacknowledgedAbsent: 1 });
    expect(r.updates).toEqual({ attempted: 4, acknowledged: 3 });
  });

  it('fails on an acknowledged create that is not stored, or stored under another id', () => {
    const r = check(history({ creates: [created(1), created(2)] }), final([{ ...row(2), id: id(99) }]));
    expect(r.acknowledgedMissing).toEqual([
      { kind: 'create', marker: 'run-c0-1', id: id(1) },
      { kind: 'create', marker: 'run-c0-2', id: id(2) },
    ]);
    expect(passed(r)).toBe(false);
  });

  it('fails on an acknowledged update overwritten by an older value, and on a value nobody wrote', () => {
    const h = history({ creates: [created(1), created(2)], updates: [update(1, 0, true), update(1, 1, true), update(2, 0, true)] });
    const r = check(h, final([row(1, 'v0'), row(2, 'never-written')]));
    expect(r.acknowledgedMissing).toEqual([{ kind: 'update', taskId: id(1), allowed: ['v1'], found: 'v0' }]);
    expect(r.phantoms).toEqual([{ kind: 'update', taskId: id(2), found: 'never-written' }]);
    expect(lossCounts(r).acknowledgedMissing).toBe(1);
  });

  it('an update never acknowledged may or may not have happened', () => {
    const updates = [update(1, 0, false), update(1, 1, false)];
    expect(allowedValues(updates, null)).toEqual([null, 'v0', 'v1']);
    expect(allowedValues([update(1, 0, true), update(1, 1, false)], null)).toEqual(['v0', 'v1']);
    expect(passed(check(history({ creates: [created(1)], updates }), final([row(1, 'v0')])))).toBe(true);
  });

  it('fails on an acknowledged create whose task.created never reached the consumer', () => {
    const r = check(history({ creates: [created(1), created(2)] }), final([row(1), row(2)], [id(1)]));
    expect(r.eventsMissing).toEqual([{ marker: 'run-c0-2', id: id(2) }]);
    expect(passed(r)).toBe(false);
  });

  it('fails on a phantom: a stored row whose marker no client attempted (or another user attempted)', () => {
    const r = check(history({ creates: [created(1)] }), final([row(1), row(7, null, 'run-c9-7'), { ...row(8, null, 'run-c0-1'), userId: 'other' }]));
    expect(r.phantoms.map((p) => (p.kind === 'row' ? p.title : p.taskId))).toEqual(['run-c0-1', 'run-c9-7']);
    expect(lossCounts(r).phantoms).toBe(2);
  });

  it('fails on a duplicate: one marker (one Idempotency-Key) stored twice, acknowledged or not', () => {
    const r = check(history({ creates: [created(1), created(2, false)] }), final([row(1), row(2), { ...row(2), id: id(22) }]));
    expect(r.duplicates).toEqual([{ marker: 'run-c0-2', ids: [id(2), id(22)] }]);
    expect(passed(r)).toBe(false);
  });

  it('fails on a hung read', () => {
    const r = check(history({ hungReads: 2 }), final([]));
    expect(lossCounts(r).hungReads).toBe(2);
    expect(passed(r)).toBe(false);
  });
});

describe('the chaos report', () => {
  const req = (start: number, end: number, outcome: RequestEntry['outcome']): RequestEntry => ({ op: 'list', start, end, outcome });

  it('gives each fault the window of the errors that ended between its injection and the tail after its heal', () => {
    const requests = [
      req(900, 950, { kind: 'failed', status: 502 }), // before the fault
      req(1000, 1100, ok),
      req(1200, 1300, { kind: 'failed', status: 503 }),
      req(1500, 4000, { kind: 'timeout' }),
      req(9000, 9100, { kind: 'error', error: 'ECONNRESET' }), // after heal + tail
    ];
    const [f] = faultFigures([{ name: 'pg-primary-stop', target: 'primary', injectedAt: 1000, healedAt: 3000 }], requests, 2000);
    expect(f).toMatchObject({ errorsSeen: 2, errorWindowSeconds: 2.8, errorKinds: { '503': 1, timeout: 1 }, lastErrorAfterHealSeconds: 1 });
    expect(requestFigures(requests)).toMatchObject({ total: 5, ok: 1, failed: 2, timedOut: 1, networkErrors: 1 });
  });
});

describe('the fault table', () => {
  const rec = (name: string, role: string): ProcessRecord =>
    ({ name, role, pid: 1, port: 1, urls: {}, logFile: '', start: { kind: 'command', command: '', args: [], env: {} } }) as unknown as ProcessRecord;
  const state = (procs: ProcessRecord[], sentinel = false): ClusterState => ({
    dir: '/x',
    createdAt: '',
    publicUrl: 'http://127.0.0.1:1',
    processes: procs,
    ...(sentinel ? { redisSentinel: { master: 'task-api', sentinels: [] } } : {}),
  });
  const monolith = [rec('primary', 'postgres-primary'), rec('replica-1', 'postgres-replica'), rec('pgbouncer', 'pgbouncer'), rec('redis', 'redis'), rec('rabbitmq', 'rabbitmq'), rec('api-1', 'api'), rec('api-2', 'api')];

  it('applies by role: the monolith gets no worker or Patroni row, a topology with those roles does', () => {
    const names = (s: ClusterState) => applicableFaults(s).apply.map((f) => f.name);
    expect(names(state(monolith))).toEqual(['api-kill', 'replica-kill', 'pgbouncer-kill', 'redis-master-kill', 'rabbitmq-kill', 'pg-primary-stop']);
    expect(applicableFaults(state(monolith)).skipped.find((s) => s.name === 'worker-kill')?.reason).toMatch(/inside the api instances/);
    expect(names(state([...monolith, rec('worker-1', 'worker'), rec('patroni-1', 'patroni'), rec('patroni-2', 'patroni')]))).toContain('patroni-primary-kill');
    expect(names(state([...monolith, rec('worker-1', 'worker')]))).toContain('worker-kill');
    expect(applicableFaults(state(monolith), FAULTS, ['api-kill']).apply.map((f) => f.name)).toEqual(['api-kill']);
  });

  it('gives the Patroni topology (no postgres-primary or -replica process) its replica, primary-stop and failover rows', () => {
    const ha = [rec('etcd', 'etcd'), rec('patroni-1', 'patroni'), rec('patroni-2', 'patroni'), rec('haproxy', 'haproxy'), rec('pgbouncer', 'pgbouncer'), rec('redis', 'redis'), rec('rabbitmq-1', 'rabbitmq'), rec('api-1', 'api'), rec('api-2', 'api'), rec('worker', 'worker')];
    const { apply, skipped } = applicableFaults(state(ha));
    expect(apply.map((f) => f.name)).toEqual(['api-kill', 'replica-kill', 'pgbouncer-kill', 'redis-master-kill', 'worker-kill', 'rabbitmq-kill', 'pg-primary-stop', 'patroni-primary-kill']);
    expect(skipped.map((s) => s.name)).toEqual(['pg-netns-partition']);
    // A single member has no replica to kill and nothing to fail over to.
    const one = ha.filter((p) => p.name !== 'patroni-2');
    expect(applicableFaults(state(one)).skipped.map((s) => s.name)).toEqual(expect.arrayContaining(['replica-kill', 'patroni-primary-kill']));
  });

  it('holds pg-primary-stop past the Patroni leader key\'s ttl every other round (a failover while frozen), under it otherwise', () => {
    const row = FAULTS.find((f) => f.name === 'pg-primary-stop')!;
    const ctx = (round: number, ha: boolean) =>
      ({ cluster: { state: () => ({ ...state([]), ...(ha ? { postgresHa: { scope: 'task-api', sync: true } } : {}) }) }, short: false, requestTimeoutMs: 10_000, say: () => undefined, round }) as unknown as FaultContext;
    expect(row.holdMs(ctx(0, true))).toBe((PATRONI_TIMING.ttl + 8) * 1000);
    expect(row.holdMs(ctx(1, true))).toBe(15_000);
    expect(row.holdMs(ctx(0, false))).toBe(15_000);
  });

  it('applies pg-netns-partition only to members recorded in network namespaces, with cluster partition in the usage', () => {
    const members = [rec('patroni-1', 'patroni'), rec('patroni-2', 'patroni')];
    const inNetns = members.map((m, i) => ({ ...m, host: `10.231.7.${11 + i}` }));
    const netnsState = { ...state(inNetns), postgresHa: { scope: 'task-api', sync: true, netns: true } };
    const usage = 'partition|heal <member>';
    expect(netnsPartitionApplies(state(members), usage)).toMatch(/network namespaces/);
    expect(netnsPartitionApplies(state(inNetns), usage)).toMatch(/network namespaces/);
    expect(netnsPartitionApplies(netnsState, 'start [--ha]')).toMatch(/not in this build/);
    expect(netnsPartitionApplies(netnsState, usage)).toBeNull();
  });

  it('never overlaps a fault that takes the database with an instance restart that needs it', () => {
    const byName = (n: string) => FAULTS.find((f) => f.name === n)!;
    expect(mayOverlap(byName('api-kill'), byName('pgbouncer-kill'))).toBe(false);
    expect(mayOverlap(byName('pg-primary-stop'), byName('api-kill'))).toBe(false);
    expect(mayOverlap(byName('pgbouncer-kill'), byName('pg-primary-stop'))).toBe(false);
    expect(mayOverlap(byName('pgbouncer-kill'), byName('redis-master-kill'))).toBe(true);
    // A failover needs the standby: a replica's crash never overlaps a fault of the leader.
    expect(mayOverlap(byName('replica-kill'), byName('patroni-primary-kill'))).toBe(false);
    expect(mayOverlap(byName('replica-kill'), byName('pg-primary-stop'))).toBe(false);
    expect(mayOverlap(byName('worker-kill'), byName('pg-primary-stop'))).toBe(false);
    expect(roundOrder([1, 2, 3], 1)).toEqual([2, 3, 1]);
  });

  it('starts the full topology with the flags this build has, and names the ones it does not', () => {
    const usage = 'start [--instances N] [--replicas R] [--redis-sentinel] [--dir D]';
    expect(startFlags('full', usage)).toEqual({
      flags: ['--instances', '3', '--replicas', '1', '--redis-sentinel'],
      skipped: [
        'ha (--ha --sync: not in this build\'s cluster start)',
        'rabbit-cluster (--rabbit-cluster: not in this build\'s cluster start)',
        'worker (--worker: not in this build\'s cluster start)',
        'netns (--netns: not in this build\'s cluster start)',
      ],
    });
    expect(startFlags('full', `${usage} [--ha] [--sync] [--rabbit-cluster] [--worker]`).flags).toEqual([
      '--instances',
      '3',
      '--replicas',
      '1',
      '--redis-sentinel',
      '--ha',
      '--sync',
      '--rabbit-cluster',
      '--worker',
    ]);
    // This build's cluster start has them all.
    expect(startFlags('full')).toEqual({ flags: ['--instances', '3', '--replicas', '1', '--redis-sentinel', '--ha', '--sync', '--rabbit-cluster', '--worker', '--netns'], skipped: [] });
    expect(startFlags('basic', usage).flags).toEqual(['--instances', '3', '--replicas', '1']);
  });
});
