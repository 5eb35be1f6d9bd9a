// `task-api keys rotate|list`: the shared signing-key store of the auth module (docs/runbooks/key-rotation.md).
import type { Config } from '../config.js';
import type { Database } from '../infra/db/database.js';
import { listSigningKeys, rotateSigningKey, type ListedKey, type RotateResult } from '../modules/auth/key-rotation.js';
import { KeyRepository } from '../modules/auth/key-store.js';
import { loadKeyRing } from '../modules/auth/keys.js';

export interface KeysCommandOptions {
  /** Overrides JWT_KEY_PUBLISH_AHEAD_SECONDS (tests; an emergency rotation). */
  publishAheadSeconds?: number;
  now?: () => number;
}

/** Adds a key: published now, signing after the publish-ahead delay; the keys it replaces retire after their last token expired. */
export function rotateKeys(database: Database, config: Config, opts: KeysCommandOptions = {}): Promise<RotateResult> {
  return rotateSigningKey(new KeyRepository(database.db), {
    publishAheadSeconds: opts.publishAheadSeconds ?? config.jwt.keyPublishAheadSeconds,
    accessTtlSeconds: config.jwt.accessTtlSeconds,
    current: () => loadKeyRing({ ...config.jwt, dataDir: config.dataDir }),
    ...(opts.now ? { now: opts.now } : {}),
  });
}

export function listKeys(database: Database, now?: () => number): Promise<ListedKey[]> {
  return listSigningKeys(new KeyRepository(database.db), now);
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Runs the subcommand; lines for the terminal. */
export async function keysCommand(action: string, database: Database, config: Config, opts: KeysCommandOptions = {}): Promise<string[]> {
  if (action === 'rotate') {
    const r = await rotateKeys(database, config, opts);
    return [
      ...r.seeded.map((kid) => JSON.stringify({ seeded: kid })),
      ...r.retiring.map((k) => JSON.stringify({ retiring: k.kid, retireAt: iso(k.retireAt) })),
      JSON.stringify({ added: r.kid, signFrom: iso(r.signFrom) }),
      `rotated: ${r.kid} is published now and signs from ${iso(r.signFrom)}`,
    ];
  }
  const keys = await listKeys(database, opts.now);
  return [
    ...keys.map((k) => JSON.stringify({ kid: k.kid, alg: k.alg, state: k.state, createdAt: iso(k.createdAt), signFrom: iso(k.signFrom), retireAt: iso(k.retireAt) })),
    `keys: ${keys.length}${keys.length === 0 ? ' (the store is empty: JWT_PRIVATE_KEY or the key under DATA_DIR signs; `keys rotate` seeds it)' : ''}`,
  ];
}
