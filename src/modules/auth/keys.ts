// Signing keys for access tokens: Ed25519 (EdDSA) or P-256 (ES256), each named by its RFC 7638
// thumbprint as `kid`. Older public keys stay in the JWKS during a rotation.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

export type SigningAlg = 'EdDSA' | 'ES256';

export interface VerificationKey {
  kid: string;
  alg: SigningAlg;
  key: KeyObject;
  jwk: JWK;
}

export interface KeyRing {
  /** The key that signs now (a stored key ring moves to the next key at its sign_from). */
  readonly signing: { kid: string; alg: SigningAlg; key: KeyObject };
  /** The keys that verify now: the published ones (the JWKS). */
  readonly verification: ReadonlyMap<string, VerificationKey>;
  readonly jwks: { keys: JWK[] };
  readonly generated: boolean;
  /**
   * A stored key ring reads the shared key store again when a token names a kid it does not know
   * (at most once per cooldown); true when it did. Absent on a fixed key ring.
   */
  reloadOnUnknownKid?(): Promise<boolean>;
}

function algOf(key: KeyObject): SigningAlg {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new Error(`Unsupported JWT key type ${key.asymmetricKeyType}: use Ed25519 or P-256`);
}

export async function verificationKey(pub: KeyObject): Promise<VerificationKey> {
  const alg = algOf(pub);
  const jwk = await exportJWK(pub);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, alg, key: pub, jwk: { ...jwk, kid, alg, use: 'sig' } };
}

export interface KeyOptions {
  privateKeyPem: string | undefined;
  publicKeysPem: string[];
  dataDir: string;
}

export async function loadKeyRing(opts: KeyOptions): Promise<KeyRing> {
  let pem = opts.privateKeyPem;
  let generated = false;
  if (!pem) {
    const file = path.resolve(opts.dataDir, 'jwt-private.pem');
    try {
      pem = await readFile(file, 'utf8');
    } catch {
      const { privateKey } = generateKeyPairSync('ed25519');
      pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, pem, { mode: 0o600, flag: 'wx' }).catch(async () => {
        pem = await readFile(file, 'utf8'); // another process wrote it first
      });
    }
    generated = true;
  }
  const privateKey = createPrivateKey(pem);
  const current = await verificationKey(createPublicKey(privateKey));
  const verification = new Map([[current.kid, current]]);
  for (const p of opts.publicKeysPem) {
    const k = await verificationKey(createPublicKey(p));
    verification.set(k.kid, k);
  }
  return {
    signing: { kid: current.kid, alg: current.alg, key: privateKey },
    verification,
    jwks: { keys: [...verification.values()].map((k) => k.jwk) },
    generated,
  };
}

/**
 * The key ring of a process that does not run the auth module: it signs nothing and verifies
 * nothing itself (its access tokens are checked against the auth service's JWKS).
 */
export function noSigningKeys(): KeyRing {
  return {
    get signing(): never {
      throw new Error('this process does not run the auth module: it has no signing key');
    },
    verification: new Map(),
    jwks: { keys: [] },
    generated: false,
  };
}
