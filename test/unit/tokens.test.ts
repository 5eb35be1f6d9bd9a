// Access-token verification and its memory of verified tokens: a token that verified once is
// accepted again without a signature check only while jwtVerify itself would accept it.
import { describe, expect, it } from 'vitest';
import { loadKeyRing } from '../../src/modules/auth/keys.js';
import { AccessTokens } from '../../src/modules/auth/tokens.js';
import { testPrivateKey } from '../helpers/app.js';

const settings = { issuer: 'task-api', audience: 'task-api', accessTtlSeconds: 60 };
const actor = { userId: '0192f7a0-0000-7000-8000-000000000001', role: 'user' as const };

async function tokensAt(clock: { ms: number }, cacheSize?: number) {
  const keys = await loadKeyRing({ privateKeyPem: testPrivateKey(), publicKeysPem: [], dataDir: ':memory:' });
  return new AccessTokens(keys, { ...settings, now: () => clock.ms, verifiedCacheSize: cacheSize });
}

describe('access tokens', () => {
  it('a remembered token is accepted until exp + 30 s leeway, then refused, as without the memory', async () => {
    for (const size of [10_000, 0]) {
      const clock = { ms: Date.now() };
      const tokens = await tokensAt(clock, size);
      const token = await tokens.sign(actor);
      expect(await tokens.verify(token)).toEqual(actor);
      clock.ms += (60 + 29) * 1000;
      expect(await tokens.verify(token)).toEqual(actor);
      clock.ms += 2000;
      await expect(tokens.verify(token)).rejects.toMatchObject({ status: 401 });
    }
  });

  it('a token differing from a remembered one in any byte is checked, and refused', async () => {
    const tokens = await tokensAt({ ms: Date.now() });
    const token = await tokens.sign(actor);
    await tokens.verify(token);
    const [h, p, sig] = token.split('.') as [string, string, string];
    const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), role: 'admin' })).toString('base64url');
    await expect(tokens.verify(`${h}.${forgedPayload}.${sig}`)).rejects.toMatchObject({ status: 401 });
    const flipped = sig.slice(0, -2) + (sig.endsWith('AA') ? 'AB' : 'AA');
    await expect(tokens.verify(`${h}.${p}.${flipped}`)).rejects.toMatchObject({ status: 401 });
  });

  it('a token signed by another key ring is refused even when the same claims were remembered', async () => {
    const clock = { ms: Date.now() };
    const ours = await tokensAt(clock);
    const theirs = await tokensAt(clock);
    await ours.verify(await ours.sign(actor));
    await expect(ours.verify(await theirs.sign(actor))).rejects.toMatchObject({ status: 401 });
  });
});
