// The shards as the operational commands see them (`task-api shards move|rebalance|status`): the
// directory and every shard's primary, opened directly (a move locks and copies across them), and
// each shard's replicas (a move waits until they have replayed the copied rows).
import type { Config } from '../../config.js';
import { openDatabase, type Database } from '../db/database.js';
import { MAIN_SHARD } from './buckets.js';

export interface ShardNode {
  name: string;
  db: Database;
  replicas: Database[];
}

export interface ShardFleet {
  /** The database that keeps the bucket map (DATABASE_URL): also the main shard. */
  directory: Database;
  shards: Map<string, ShardNode>;
  /** Resolves a shard by name, naming the known ones when it is not one of them. */
  shard(name: string): ShardNode;
  close(): Promise<void>;
}

export async function openFleet(config: Config): Promise<ShardFleet> {
  if (!config.database.url) throw new Error('DATABASE_URL is not set: the shards are those of a PostgreSQL deployment (or give --dir of a cluster)');
  const open = (url: string, name: string) =>
    openDatabase({ url, poolMax: 4, prepare: false, connectTimeoutSeconds: 10, applicationName: `task-api-shards-${name}`, dataDir: '' });
  const opened: Database[] = [];
  const track = async (p: Promise<Database>) => {
    const db = await p;
    opened.push(db);
    return db;
  };
  try {
    const directory = await track(open(config.database.url, MAIN_SHARD));
    const shards = new Map<string, ShardNode>();
    // One at a time: a failure closes exactly what was opened before it.
    const replicasOf = async (urls: { url: string }[], name: string) => {
      const out: Database[] = [];
      for (const r of urls) out.push(await track(open(r.url, `${name}-replica`)));
      return out;
    };
    shards.set(MAIN_SHARD, { name: MAIN_SHARD, db: directory, replicas: await replicasOf(config.database.replicas, MAIN_SHARD) });
    for (const t of config.shards.extra) {
      shards.set(t.name, { name: t.name, db: await track(open(t.primary.url, t.name)), replicas: await replicasOf(t.replicas, t.name) });
    }
    return {
      directory,
      shards,
      shard(name) {
        const node = shards.get(name);
        if (!node) throw new Error(`no shard named "${name}" (the shards are ${[...shards.keys()].join(', ')})`);
        return node;
      },
      async close() {
        await Promise.all(opened.map((d) => d.close().catch(() => undefined)));
      },
    };
  } catch (err) {
    await Promise.all(opened.map((d) => d.close().catch(() => undefined)));
    throw err;
  }
}
