// The stored key ring and `keys rotate` over an in-memory store: a new key is published at once,
// signs from its sign_from, and the key it replaces leaves the JWKS only after its last token
// expired. The clock is the test's.
import { describe, expect, it } from 'vitest';
import { listSigningKeys, rotateSigningKey } from '../../src/modules/auth/key-rotation.js';
import { StoredKeyRing, type KeyRepository } from '../../src/modules/auth/key-store.js';
import { loadKeyRing } from '../../src/modules/auth/keys.js';
import type { SigningKeyRow } from '../../src/modules/auth/table.js';
import { AccessTokens } from '../../src/modules/auth/tokens.js';
import { testPrivateKey } from '../helpers/app.js';

class MemoryKeys {
  rows: SigningKeyRow[] = [];
  reads = 0;
  async list() {
    this.reads++;
    return [...this.rows].sort((a, b) => a.signFrom.getTime() - b.signFrom.getTime());
  }
  async locked<T>(fn: (r: KeyRepository) => Promise<T>) {
    return fn(this as unknown as KeyRepository);
  }
  async insert(row: SigningKeyRow) {
    if (!this.rows.some((r) => r.kid === row.kid)) this.rows.push(row);
  }
  async setRetireAt(kid: string, retireAt: Date) {
    this.rows.find((r) => r.kid === kid)!.retireAt = retireAt;
  }
  async prune(before: Date) {
    this.rows = this.rows.filter((r) => !r.retireAt || r.retireAt >= before);
  }
}

const TTL = 900;
const actor = { userId: '0192f7a0-0000-7000-8000-000000000001', role: 'user' as const };

async function setup() {
  const store = new MemoryKeys();
  const clock = { ms: Date.UTC(2030, 0, 1) };
  const pem = testPrivateKey();
  const fixed = () => loadKeyRing({ privateKeyPem: pem, publicKeysPem: [], dataDir: ':memory:' });
  const ring = await StoredKeyRing.open(store as unknown as KeyRepository, { reloadSeconds: 60, fallback: fixed, now: () => clock.ms, unknownKidCooldownMs: 10_000 });
  const tokens = new AccessTokens(ring, { issuer: 'task-api', audience: 'task-api', accessTtlSeconds: TTL, now: () => clock.ms, verifiedCacheSize: 0 });
  const rotate = (publishAheadSeconds = 600) =>
    rotateSigningKey(store as unknown as KeyRepository, { publishAheadSeconds, accessTtlSeconds: TTL, current: fixed, now: () => clock.ms });
  return { store, clock, ring, tokens, rotate, fixedKid: (await fixed()).signing.kid };
}

describe('stored key ring and rotation', () => {
  it('an empty store: the fixed key signs, as before the store', async () => {
    const { ring, fixedKid, tokens } = await setup();
    expect(ring.stored).toBe(false);
    expect(ring.signing.kid).toBe(fixedKid);
    expect(ring.jwks.keys.map((k) => k.kid)).toEqual([fixedKid]);
    await expect(tokens.verify(await tokens.sign(actor))).resolves.toEqual(actor);
  });

  it('rotate: seeds the fixed key, publishes the new one at once, switches at sign_from, retires the old after its tokens expired', async () => {
    const { store, clock, ring, tokens, rotate, fixedKid } = await setup();
    const oldToken = await tokens.sign(actor);
    const r = await rotate(600);
    expect(r.seeded).toEqual([fixedKid]);
    await ring.reload();
    // Published at once, not signing yet.
    expect(ring.jwks.keys.map((k) => k.kid).sort()).toEqual([fixedKid, r.kid].sort());
    expect(ring.signing.kid).toBe(fixedKid);
    expect((await listSigningKeys(store as unknown as KeyRepository, () => clock.ms)).map((k) => [k.kid, k.state])).toEqual([
      [fixedKid, 'signing'],
      [r.kid, 'pending'],
    ]);
    // At sign_from the new key signs; the old one still verifies.
    clock.ms = r.signFrom.getTime();
    expect(ring.signing.kid).toBe(r.kid);
    const newToken = await tokens.sign(actor);
    await expect(tokens.verify(newToken)).resolves.toEqual(actor);
    const lastOld = await (async () => {
      clock.ms -= 1; // the last moment the old key signed
      const t = await tokens.sign(actor);
      clock.ms += 1;
      return t;
    })();
    // Until the last old token has expired (TTL + 30 s leeway), it verifies; the old key then leaves the JWKS.
    clock.ms = r.signFrom.getTime() + (TTL + 28) * 1000;
    await expect(tokens.verify(lastOld)).resolves.toEqual(actor);
    expect(ring.verification.has(fixedKid)).toBe(true);
    clock.ms = r.retiring[0]!.retireAt.getTime();
    expect(ring.verification.has(fixedKid)).toBe(false);
    expect(ring.jwks.keys.map((k) => k.kid)).toEqual([r.kid]);
    await expect(tokens.verify(oldToken)).rejects.toMatchObject({ status: 401 });
    expect(r.retiring[0]!.retireAt.getTime()).toBeGreaterThan(r.signFrom.getTime() + (TTL + 30) * 1000);
  });

  it('an auth instance that has not read the store since a rotation reads it on an unknown kid, at most once per cooldown', async () => {
    const { store, clock, rotate } = await setup();
    // A second auth instance over the same store, opened before the rotation.
    const other = await StoredKeyRing.open(store as unknown as KeyRepository, {
      reloadSeconds: 60,
      fallback: () => loadKeyRing({ privateKeyPem: testPrivateKey(), publicKeysPem: [], dataDir: ':memory:' }),
      now: () => clock.ms,
      unknownKidCooldownMs: 10_000,
    });
    const otherTokens = new AccessTokens(other, { issuer: 'task-api', audience: 'task-api', accessTtlSeconds: TTL, now: () => clock.ms, verifiedCacheSize: 0 });
    const r = await rotate(0);
    const signer = await StoredKeyRing.open(store as unknown as KeyRepository, { reloadSeconds: 60, fallback: () => Promise.reject(new Error('unused')), now: () => clock.ms });
    const signerTokens = new AccessTokens(signer, { issuer: 'task-api', audience: 'task-api', accessTtlSeconds: TTL, now: () => clock.ms });
    expect(signer.signing.kid).toBe(r.kid);
    const readsBefore = store.reads;
    await expect(otherTokens.verify(await signerTokens.sign(actor))).resolves.toEqual(actor);
    expect(store.reads).toBe(readsBefore + 1);
    // A made-up kid right after: no second read within the cooldown.
    const forged = new AccessTokens(await loadKeyRing({ privateKeyPem: testPrivateKey(), publicKeysPem: [], dataDir: ':memory:' }), { issuer: 'task-api', audience: 'task-api', accessTtlSeconds: TTL, now: () => clock.ms });
    await expect(otherTokens.verify(await forged.sign(actor))).rejects.toMatchObject({ status: 401 });
    expect(store.reads).toBe(readsBefore + 1);
  });

  it('rotating twice before the first new key signs: the pending key retires with the old one, the newest signs', async () => {
    const { clock, ring, rotate, fixedKid } = await setup();
    const first = await rotate(600);
    clock.ms += 1000;
    const second = await rotate(600);
    await ring.reload();
    expect(ring.jwks.keys.map((k) => k.kid).sort()).toEqual([fixedKid, first.kid, second.kid].sort());
    clock.ms = second.signFrom.getTime();
    expect(ring.signing.kid).toBe(second.kid);
    clock.ms = second.retiring[0]!.retireAt.getTime();
    expect(ring.jwks.keys.map((k) => k.kid)).toEqual([second.kid]);
  });
});
