#!/bin/sh
# Writes PgBouncer's auth_file from the environment (mode 600), then runs PgBouncer in the
# foreground as PID 1 (it exits on SIGTERM/SIGINT; SIGINT waits for clients, SIGTERM does not).
set -eu
: "${PGBOUNCER_AUTH_USER:?}" "${PGBOUNCER_AUTH_PASSWORD:?}"
umask 077
printf '"%s" "%s"\n' "$PGBOUNCER_AUTH_USER" "$PGBOUNCER_AUTH_PASSWORD" > /etc/pgbouncer/userlist.txt
exec pgbouncer "$@"
