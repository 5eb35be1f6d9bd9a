#!/usr/bin/env bash
# A streaming replica of PRIMARY_HOST with the official postgres image (no replica mode of its
# own): on an empty data directory it clones the primary with pg_basebackup -R (standby.signal
# and primary_conninfo written for it) through a replication slot of its own, then starts
# PostgreSQL through the image's entrypoint, which finds the data directory initialised and only
# starts the server. Later starts reuse the directory and resume streaming. A replica whose
# volume was removed needs its old slot dropped on the primary first
# (SELECT pg_drop_replication_slot('replica_1')). As `cluster start` does with the Debian binaries.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:?}" "${REPLICATION_PASSWORD:?}" "${REPLICATION_SLOT:=replica_1}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "$PRIMARY_HOST" -p 5432; do sleep 1; done
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  PGPASSWORD="$REPLICATION_PASSWORD" gosu postgres \
    pg_basebackup -h "$PRIMARY_HOST" -p 5432 -U replicator -D "$PGDATA" -R -X stream -C -S "$REPLICATION_SLOT"
fi
exec docker-entrypoint.sh postgres
