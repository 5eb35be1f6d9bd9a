// The key ring of an auth instance when keys live in the shared store (signing_keys): read at
// start, again every JWT_KEY_RELOAD_SECONDS and when a token names an unknown kid, so a rotation
// (`task-api keys rotate`) reaches every instance without a restart. What signs and what is
// published is decided from the rows' timestamps at the moment of use: every instance that has
// read the rows switches to a new key at the same sign_from.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { and, asc, eq, isNotNull, lt, sql } from 'drizzle-orm';
import type { JWK } from 'jose';
import type { Db } from '../../infra/db/database.js';
import { verificationKey, type KeyRing, type SigningAlg, type VerificationKey } from './keys.js';
import { signingKeys, type SigningKeyRow } from './table.js';

/** The only code with the store's SQL. */
export class KeyRepository {
  constructor(private readonly db: Db) {}

  list(): Promise<SigningKeyRow[]> {
    return this.db.select().from(signingKeys).orderBy(asc(signingKeys.signFrom), asc(signingKeys.createdAt));
  }

  /** Runs fn alone among rotations (advisory lock), in one transaction. */
  locked<T>(fn: (repo: KeyRepository) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(7340212)`);
      return fn(new KeyRepository(tx));
    });
  }

  async insert(row: SigningKeyRow): Promise<void> {
    await this.db.insert(signingKeys).values(row).onConflictDoNothing();
  }

  async setRetireAt(kid: string, retireAt: Date): Promise<void> {
    await this.db.update(signingKeys).set({ retireAt }).where(eq(signingKeys.kid, kid));
  }

  /** Deletes keys retired before `before` (their private keys with them). */
  async prune(before: Date): Promise<void> {
    await this.db.delete(signingKeys).where(and(isNotNull(signingKeys.retireAt), lt(signingKeys.retireAt, before)));
  }
}

interface StoredKey {
  kid: string;
  alg: SigningAlg;
  privateKey: KeyObject | undefined;
  verification: VerificationKey;
  signFromMs: number;
  retireAtMs: number | undefined;
}

async function storedKey(row: SigningKeyRow): Promise<StoredKey> {
  const verification = await verificationKey(createPublicKey(row.publicKey));
  return {
    kid: verification.kid,
    alg: verification.alg,
    privateKey: row.privateKey ? createPrivateKey(row.privateKey) : undefined,
    verification,
    signFromMs: row.signFrom.getTime(),
    retireAtMs: row.retireAt?.getTime(),
  };
}

const published = (k: StoredKey, nowMs: number) => k.retireAtMs === undefined || k.retireAtMs > nowMs;

export interface StoredKeyRingOptions {
  /** How often the store is read again (JWT_KEY_RELOAD_SECONDS). */
  reloadSeconds: number;
  /** The fixed key ring (JWT_PRIVATE_KEY, or the key under DATA_DIR) used while the store is empty. */
  fallback: () => Promise<KeyRing>;
  /** A store read for an unknown kid happens at most once per this (ms). */
  unknownKidCooldownMs?: number;
  now?: () => number;
  warn?: (obj: object, msg: string) => void;
}

/** The keys in force at one moment, computed from the rows and remembered until a row's next timestamp. */
interface Snapshot {
  untilMs: number;
  signing: KeyRing['signing'];
  verification: Map<string, VerificationKey>;
  jwks: { keys: JWK[] };
}

export class StoredKeyRing implements KeyRing {
  private keys: StoredKey[] = [];
  private fallbackRing: KeyRing | undefined;
  private snapshot: Snapshot | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastUnknownReloadMs = -Infinity;
  private reloading: Promise<void> | undefined;
  private readonly now: () => number;

  private constructor(
    private readonly repo: KeyRepository,
    private readonly opts: StoredKeyRingOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  static async open(repo: KeyRepository, opts: StoredKeyRingOptions): Promise<StoredKeyRing> {
    const ring = new StoredKeyRing(repo, opts);
    await ring.reload();
    return ring;
  }

  /** Reads the store again every reloadSeconds until close(); a failed read keeps the keys it has. */
  start(): void {
    this.timer = setInterval(() => {
      this.reload().catch((err: unknown) => this.opts.warn?.({ err: String(err) }, 'signing keys: reading the key store failed; keeping the keys read before'));
    }, this.opts.reloadSeconds * 1000);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** True while the store holds keys (else the fixed key ring is in use). */
  get stored(): boolean {
    return this.keys.length > 0;
  }

  get generated(): boolean {
    return !this.stored && (this.fallbackRing?.generated ?? false);
  }

  get signing(): KeyRing['signing'] {
    return this.fallbackRing && !this.stored ? this.fallbackRing.signing : this.current().signing;
  }

  get verification(): ReadonlyMap<string, VerificationKey> {
    return this.fallbackRing && !this.stored ? this.fallbackRing.verification : this.current().verification;
  }

  get jwks(): { keys: JWK[] } {
    return this.fallbackRing && !this.stored ? this.fallbackRing.jwks : this.current().jwks;
  }

  reload(): Promise<void> {
    return (this.reloading ??= (async () => {
      try {
        const keys = await Promise.all((await this.repo.list()).map(storedKey));
        if (keys.length === 0) this.fallbackRing ??= await this.opts.fallback();
        this.keys = keys;
        this.snapshot = undefined;
      } finally {
        this.reloading = undefined;
      }
    })());
  }

  async reloadOnUnknownKid(): Promise<boolean> {
    const nowMs = this.now();
    if (this.reloading) {
      await this.reloading.catch(() => undefined);
      return true;
    }
    if (nowMs - this.lastUnknownReloadMs < (this.opts.unknownKidCooldownMs ?? 10_000)) return false;
    this.lastUnknownReloadMs = nowMs;
    try {
      await this.reload();
      return true;
    } catch {
      return false;
    }
  }

  private current(): Snapshot {
    const nowMs = this.now();
    if (this.snapshot && nowMs < this.snapshot.untilMs) return this.snapshot;
    const live = this.keys.filter((k) => published(k, nowMs));
    // The newest key whose sign_from has come; before any has (cannot happen once seeded), the oldest.
    const signable = live.filter((k) => k.privateKey && k.signFromMs <= nowMs);
    const signer = signable.length > 0 ? signable.reduce((a, b) => (b.signFromMs >= a.signFromMs ? b : a)) : live.find((k) => k.privateKey);
    if (!signer?.privateKey) throw new Error('signing keys: the key store holds no key that may sign now (see `task-api keys list`)');
    const boundaries = this.keys.flatMap((k) => [k.signFromMs, k.retireAtMs ?? Infinity]).filter((t) => t > nowMs);
    this.snapshot = {
      untilMs: Math.min(Infinity, ...boundaries),
      signing: { kid: signer.kid, alg: signer.alg, key: signer.privateKey },
      verification: new Map(live.map((k) => [k.kid, k.verification])),
      jwks: { keys: live.map((k) => k.verification.jwk) },
    };
    return this.snapshot;
  }
}
