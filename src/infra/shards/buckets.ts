// Owners and buckets. The shard key is the owner of the data: a user today (tasks.user_id), a
// workspace if tasks become shared later; a personal workspace's id can be its user's, so that
// change would move no row and rename no query. Each owner hashes to one of BUCKETS virtual
// buckets, and the bucket map (map.ts) assigns buckets to shards: moving a bucket moves every
// owner in it, and rebalancing is a matter of moving buckets, never of rehashing.
import { createHash } from 'node:crypto';

/** The number of virtual buckets: fixed for the life of a deployment (migrations/0010_shards.sql). */
export const BUCKETS = 1024;

/** The id of whoever owns a row of the sharded tables (today a user's id). */
export type OwnerId = string;

/**
 * The owner's bucket: the first 32 bits of md5 of its id (lowercase, as PostgreSQL writes a
 * uuid), modulo BUCKETS. The SQL function owner_bucket(uuid) computes the same.
 */
export function bucketOf(owner: OwnerId): number {
  return createHash('md5').update(owner.toLowerCase()).digest().readUInt32BE(0) % BUCKETS;
}

/** The name of the shard that is today's single database, and the one a new deployment starts on. */
export const MAIN_SHARD = 'main';

/** A shard's name as the settings and the map write it. */
export const SHARD_NAME = /^[a-z][a-z0-9-]{0,30}$/;
