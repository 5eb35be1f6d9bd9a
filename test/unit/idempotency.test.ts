// The pieces of Idempotency-Key that need no server: the setting, the canonical body text the
// fingerprint hashes, and the in-process store's claims and bound.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { MemoryIdempotencyStore } from '../../src/infra/idempotency/memory.js';
import { decodeValue, doneValue } from '../../src/infra/idempotency/types.js';
import { canonicalJson } from '../../src/shared/canonical-json.js';

const response = (body: string) => ({ status: 201, headers: { 'content-type': 'application/json; charset=utf-8' }, body });

describe('IDEMPOTENCY_TTL_SECONDS', () => {
  it('defaults to 24 h and takes 1 s to 7 days', () => {
    expect(loadConfig({}).idempotency.ttlSeconds).toBe(86_400);
    expect(loadConfig({ IDEMPOTENCY_TTL_SECONDS: '2' }).idempotency.ttlSeconds).toBe(2);
    for (const bad of ['0', '604801', 'a day', '-1']) {
      expect(() => loadConfig({ IDEMPOTENCY_TTL_SECONDS: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ IDEMPOTENCY_TTL_SECONDS: bad }), bad).toThrow(/IDEMPOTENCY_TTL_SECONDS/);
    }
  });
});

describe('canonicalJson', () => {
  it('is the same text whatever the key order, and differs with any value', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
    expect(canonicalJson({ a: '1' })).not.toBe(canonicalJson({ a: 1 }));
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    expect(canonicalJson(undefined)).toBe('');
    expect(canonicalJson('x"y')).toBe('"x\\"y"');
    expect(canonicalJson({ a: [], b: {}, c: [[1], { '': true }] })).toBe('{"a":[],"b":{},"c":[[1],{"":true}]}');
  });

  it('takes any depth JSON.parse takes (a body is read before validation)', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(canonicalJson(deep)).toHaveLength(200_000);
  });
});

describe('stored values', () => {
  it('read back what was stored, bodies with | included', () => {
    const r = response('{"title":"a|b"}');
    expect(decodeValue(doneValue('fp', r))).toEqual({ state: 'done', fingerprint: 'fp', response: r });
  });
});

describe('MemoryIdempotencyStore', () => {
  it('claims once; only the claim completes or releases it; answered keys expire', async () => {
    let now = 1_000;
    const store = new MemoryIdempotencyStore(1024 * 1024, () => now);
    const first = await store.claim('k', 'fp', 60_000, 86_400);
    if (first.state !== 'claimed') throw new Error('expected a claim');
    expect(await store.claim('k', 'fp', 60_000, 86_400)).toEqual({ state: 'in-flight', fingerprint: 'fp' });
    // A stranger's token neither completes nor releases it.
    const stranger = { ...first.claim, token: 'other' };
    expect(await store.complete(stranger, response('x'), 10)).toBe(false);
    await store.release(stranger);
    expect((await store.claim('k', 'fp', 60_000, 86_400)).state).toBe('in-flight');

    expect(await store.complete(first.claim, response('{"id":1}'), 10)).toBe(true);
    expect(await store.claim('k', 'other-fp', 60_000, 86_400)).toEqual({ state: 'done', fingerprint: 'fp', response: response('{"id":1}') });
    now += 10_001;
    expect((await store.claim('k', 'fp', 60_000, 86_400)).state).toBe('claimed');
  });

  it('a lapsed lease frees the key, and the late owner can no longer complete it', async () => {
    let now = 0;
    const store = new MemoryIdempotencyStore(1024 * 1024, () => now);
    const late = await store.claim('k', 'fp', 1_000, 86_400);
    now += 1_001;
    const next = await store.claim('k', 'fp', 1_000, 86_400);
    expect(next.state).toBe('claimed');
    if (late.state !== 'claimed') throw new Error('expected a claim');
    expect(await store.complete(late.claim, response('late'), 10)).toBe(false);
  });

  it('never holds more than its bound of answers, dropping the oldest; claims in flight stay', async () => {
    const maxBytes = 64 * 1024;
    const store = new MemoryIdempotencyStore(maxBytes);
    const held = await store.claim('in-flight', 'fp', 60_000, 86_400);
    expect(held.state).toBe('claimed');
    for (let i = 0; i < 200; i++) {
      const c = await store.claim(`k${i}`, 'fp', 60_000, 86_400);
      if (c.state !== 'claimed') throw new Error('expected a claim');
      await store.complete(c.claim, response('x'.repeat(2000)), 3600);
      expect(store.bytes).toBeLessThanOrEqual(maxBytes);
    }
    expect((await store.claim('k199', 'fp', 60_000, 86_400)).state).toBe('done');
    expect((await store.claim('k0', 'fp', 60_000, 86_400)).state).toBe('claimed');
    expect((await store.claim('in-flight', 'fp', 60_000, 86_400)).state).toBe('in-flight');
  });
});
