// A shard's hold on its buckets (migrations/0010_shards.sql shard_buckets). Every write of a
// bucket's rows on a sharded deployment first takes a key-share lock on the bucket's row there:
// writes of one bucket never wait on each other, and a move fences the bucket by deleting the row,
// which waits for the writes in flight and leaves later ones without a row (BucketMovedError).
import { eq, type Placeholder } from 'drizzle-orm';
import { integer, pgTable } from 'drizzle-orm/pg-core';
import type { Db } from '../db/database.js';

export const shardBuckets = pgTable('shard_buckets', {
  bucket: integer('bucket').primaryKey(),
});

/** A write reached a shard that does not hold the owner's bucket (moved, or being moved). */
export class BucketMovedError extends Error {
  constructor(
    readonly bucket: number,
    readonly shard: string,
  ) {
    super(`bucket ${bucket} is not held by shard ${shard} (moved or being moved)`);
    this.name = 'BucketMovedError';
  }
}

/**
 * The bucket's row, locked against its removal: the first statement of a write's transaction,
 * or a WITH query of a single-statement write (`bucket` a value or a placeholder).
 */
export const bucketRow = (db: Db, bucket: number | Placeholder) =>
  db.select({ bucket: shardBuckets.bucket }).from(shardBuckets).where(eq(shardBuckets.bucket, bucket)).for('key share');
