// `task-api keys rotate` and `keys list`: the store's keys and their life. A new key is published
// (in the JWKS) at once and signs only after the publish-ahead delay, so every verifier's cached
// JWKS has it before the first token it signs; the keys it replaces leave the JWKS only after the
// last token they signed has expired (their last signing moment + access TTL + leeway + margin).
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ACCESS_TOKEN_LEEWAY_SECONDS } from '../../http/access-token.js';
import { verificationKey, type KeyRing, type SigningAlg } from './keys.js';
import type { KeyRepository } from './key-store.js';
import type { SigningKeyRow } from './table.js';

/** Added to the access TTL and the leeway before a replaced key leaves the JWKS: clock skew, slow requests. */
export const RETIRE_MARGIN_SECONDS = 60;
/** Retired keys (private keys included) are deleted this long after they left the JWKS. */
const PRUNE_AFTER_MS = 24 * 3600 * 1000;

export interface RotateOptions {
  /** JWT_KEY_PUBLISH_AHEAD_SECONDS: from publication to first signature. */
  publishAheadSeconds: number;
  accessTtlSeconds: number;
  /** The fixed keys in use while the store is empty (JWT_PRIVATE_KEY + JWT_PUBLIC_KEYS, or DATA_DIR's): seeded first. */
  current: () => Promise<KeyRing>;
  alg?: SigningAlg;
  now?: () => number;
}

export interface RotateResult {
  kid: string;
  signFrom: Date;
  seeded: string[];
  retiring: { kid: string; retireAt: Date }[];
}

const pemOf = (k: KeyObject, type: 'pkcs8' | 'spki') => k.export({ type, format: 'pem' }).toString();

function newKey(alg: SigningAlg): KeyObject {
  return alg === 'EdDSA' ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

export async function rotateSigningKey(repo: KeyRepository, opts: RotateOptions): Promise<RotateResult> {
  const nowMs = (opts.now ?? Date.now)();
  const now = new Date(nowMs);
  const signFrom = new Date(nowMs + opts.publishAheadSeconds * 1000);
  const privateKey = newKey(opts.alg ?? 'EdDSA');
  const vk = await verificationKey(createPublicKey(privateKey));
  const retireAt = new Date(signFrom.getTime() + (opts.accessTtlSeconds + ACCESS_TOKEN_LEEWAY_SECONDS + RETIRE_MARGIN_SECONDS) * 1000);
  return repo.locked(async (tx) => {
    let rows = await tx.list();
    const seeded: string[] = [];
    if (rows.length === 0) {
      // The key signing today keeps signing until the new one takes over; the older public keys
      // (JWT_PUBLIC_KEYS) verify what they signed until then too.
      const ring = await opts.current();
      for (const [kid, v] of ring.verification) {
        const signs = kid === ring.signing.kid;
        await tx.insert({
          kid,
          alg: v.alg,
          privateKey: signs ? pemOf(ring.signing.key, 'pkcs8') : null,
          publicKey: pemOf(v.key, 'spki'),
          createdAt: now,
          signFrom: signs ? new Date(0) : now,
          retireAt: signs ? null : retireAt,
        });
        seeded.push(kid);
      }
      rows = await tx.list();
    }
    const retiring: RotateResult['retiring'] = [];
    for (const r of rows) {
      if (r.retireAt === null || r.retireAt > retireAt) {
        await tx.setRetireAt(r.kid, retireAt);
        retiring.push({ kid: r.kid, retireAt });
      }
    }
    const row: SigningKeyRow = { kid: vk.kid, alg: vk.alg, privateKey: pemOf(privateKey, 'pkcs8'), publicKey: pemOf(vk.key, 'spki'), createdAt: now, signFrom, retireAt: null };
    await tx.insert(row);
    await tx.prune(new Date(nowMs - PRUNE_AFTER_MS));
    return { kid: vk.kid, signFrom, seeded, retiring };
  });
}

export type KeyState = 'pending' | 'signing' | 'verifying' | 'retired';

export interface ListedKey {
  kid: string;
  alg: string;
  state: KeyState;
  createdAt: Date;
  signFrom: Date;
  retireAt: Date | null;
}

/** The store's keys with their state now: pending (published, not signing yet), signing, verifying (replaced, still published), retired. */
export async function listSigningKeys(repo: KeyRepository, now: () => number = Date.now): Promise<ListedKey[]> {
  const nowMs = now();
  const rows = await repo.list();
  const live = rows.filter((r) => r.retireAt === null || r.retireAt.getTime() > nowMs);
  const signer = live.filter((r) => r.privateKey && r.signFrom.getTime() <= nowMs).at(-1)?.kid; // rows come ordered by sign_from
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    state: !live.includes(r) ? 'retired' : r.kid === signer ? 'signing' : r.signFrom.getTime() > nowMs ? 'pending' : 'verifying',
    createdAt: r.createdAt,
    signFrom: r.signFrom,
    retireAt: r.retireAt,
  }));
}
