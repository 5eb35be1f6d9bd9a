-- Sharding the tasks data by its owner (src/infra/shards/): each owner (a user today, a
-- workspace if tasks become shared) hashes to one of 1,024 virtual buckets, and the bucket map
-- assigns buckets to shards. Every database gets these tables (one migration history); which
-- ones a database uses depends on its role:
--
-- - the directory (the database of DATABASE_URL where the tasks module runs) keeps the map:
--   shard_map, shard_map_version, shard_clients;
-- - each shard keeps shard_buckets: the buckets it holds now. Every write of a bucket's rows
--   takes a key-share lock on its row there, so a move can fence the bucket by deleting the row
--   (it waits for the writes in flight; later ones find no row and are refused).

-- The bucket of an owner: the first 32 bits of md5 of its id, modulo 1024. The same function is
-- src/infra/shards/buckets.ts bucketOf(); a test checks that both agree.
CREATE FUNCTION owner_bucket(owner uuid) RETURNS integer
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT (('x' || substr(md5(owner::text), 1, 8))::bit(32)::bigint % 1024)::integer $$;

-- Which shard holds each bucket. copy_on names another shard that still holds a copy of the
-- bucket's rows while a move is under way (before the flip: the target being filled; after it:
-- the source not yet emptied); reads across shards leave those copies out.
CREATE TABLE shard_map (
  bucket  integer PRIMARY KEY CHECK (bucket >= 0 AND bucket < 1024),
  shard   text NOT NULL,
  copy_on text CHECK (copy_on IS NULL OR copy_on <> shard)
);

-- Bumped with every change of the map; instances poll it and reload the map when it moves.
CREATE TABLE shard_map_version (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version  bigint NOT NULL
);

-- The map version each running instance has loaded, written with every poll: a move waits until
-- every live instance has the flipped map before the bucket takes writes on its new shard.
CREATE TABLE shard_clients (
  instance text PRIMARY KEY,
  version  bigint NOT NULL,
  seen_at  timestamptz NOT NULL DEFAULT now()
);

-- On a shard: the buckets it holds now.
CREATE TABLE shard_buckets (
  bucket integer PRIMARY KEY CHECK (bucket >= 0 AND bucket < 1024)
);
