// The lost-write checker must catch each broken promise on its own, and accept both outcomes of
// a write whose answer was lost.
import { describe, expect, it } from 'vitest';
import { checkWrites, WriteLog, type StoredRow } from '../../loadtest/writes.js';

const run = (t: string) => t.startsWith('w-');

function logOf(...specs: { key: string; user?: string; acked?: string }[]): WriteLog {
  const log = new WriteLog();
  for (const s of specs) {
    log.attempt(s.key, `w-${s.key}`, s.user ?? 'u1');
    if (s.acked) log.ack(s.key, s.acked);
    else log.fail(s.key, 'ECONNRESET');
  }
  return log;
}
const row = (key: string, id: string, userId = 'u1'): StoredRow => ({ id, userId, title: `w-${key}` });

describe('checkWrites', () => {
  it('passes a clean run: every acknowledged write stored once, the lost answers either way', () => {
    const log = logOf({ key: 'a', acked: '1' }, { key: 'b', acked: '2' }, { key: 'c' }, { key: 'd' });
    const c = checkWrites(log, [row('a', '1'), row('b', '2'), row('c', '3'), { id: '9', userId: 'u1', title: 'fixture' }], run);
    expect(c).toMatchObject({ attempted: 4, acknowledged: 2, ackedMissing: [], duplicates: [], neverAttempted: [], wrongId: [] });
    expect([c.unacknowledgedPresent, c.unacknowledgedAbsent]).toEqual([1, 1]);
  });

  it('reports an acknowledged write that is missing', () => {
    const c = checkWrites(logOf({ key: 'a', acked: '1' }), [], run);
    expect(c.ackedMissing.map((a) => a.key)).toEqual(['a']);
  });

  it('reports a retry applied twice, acknowledged or not', () => {
    const c = checkWrites(logOf({ key: 'a', acked: '1' }, { key: 'b' }), [row('a', '1'), row('a', '7'), row('b', '2'), row('b', '3')], run);
    expect(c.duplicates.map((d) => d.title).sort()).toEqual(['w-a', 'w-b']);
  });

  it('reports a row no one attempted, and one stored under another user', () => {
    const c = checkWrites(logOf({ key: 'a', acked: '1' }), [row('a', '1'), row('zz', '5')], run);
    expect(c.neverAttempted.map((r) => r.id)).toEqual(['5']);
    const other = checkWrites(logOf({ key: 'a', acked: '1' }), [row('a', '1', 'u2')], run);
    expect(other.ackedMissing).toHaveLength(1);
  });

  it('reports an acknowledgement whose id is not the stored one', () => {
    const c = checkWrites(logOf({ key: 'a', acked: '1' }), [row('a', '2')], run);
    expect(c.wrongId).toHaveLength(1);
  });

  it('counts tries of the same key as one attempt', () => {
    const log = new WriteLog();
    log.attempt('k', 'w-k', 'u1');
    log.fail('k', '502');
    log.attempt('k', 'w-k', 'u1');
    log.ack('k', '1');
    expect(log.attempts()).toEqual([{ key: 'k', title: 'w-k', userId: 'u1', tries: 2, ackedId: '1' }]);
  });
});
