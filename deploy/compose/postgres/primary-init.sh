#!/usr/bin/env bash
# The primary's first start (the official postgres image runs /docker-entrypoint-initdb.d/*.sh
# once, as postgres, on an empty data directory): a replication role for the streaming replicas
# (postgres/replica-entrypoint.sh) and its pg_hba line, and the split services' databases
# (EXTRA_DATABASES, space-separated; docker-compose-split.yml), owned by POSTGRES_USER.
set -euo pipefail

if [ -n "${REPLICATION_PASSWORD:-}" ]; then
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL
  # The image's own line (host all all all scram-sha-256) does not match replication connections.
  echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi

for db in ${EXTRA_DATABASES:-}; do
  createdb --username "$POSTGRES_USER" --owner "$POSTGRES_USER" "$db"
done
