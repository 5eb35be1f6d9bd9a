// Produces the OpenAPI document from the route schemas, exactly as the server serves it.
import { generateKeyPairSync } from 'node:crypto';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';
import { openDatabase } from '../infra/db/database.js';
import { MemoryTokenStore } from '../infra/token-store/memory.js';
import { loadKeyRing } from '../modules/auth/keys.js';
import type { ModuleName } from '../modules/registry.js';

/** The document of a process serving `modules` (default: all of them, the whole API). */
export async function openApiDocument(modules?: ReadonlySet<ModuleName>): Promise<unknown> {
  // Nothing is queried: the database and key only satisfy the wiring.
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' });
  const database = await openDatabase({ url: undefined, poolMax: 1, prepare: false, dataDir: ':memory:' });
  const privateKeyPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const keys = await loadKeyRing({ privateKeyPem, publicKeysPem: [], dataDir: ':unused:' });
  const app = await buildApp({ config, database, tokenStore: new MemoryTokenStore(), keys, ...(modules ? { modules } : {}) });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    await database.close();
  }
}

export const serialiseDocument = (doc: unknown) => `${JSON.stringify(doc, null, 2)}\n`;
