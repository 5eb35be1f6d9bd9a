# PgBouncer for the compose files: Debian 12's package, the 1.18 this project tests against
# (test/system/pgbouncer.test.ts; no official image exists). deploy/pgbouncer/pgbouncer.ini is
# mounted at /etc/pgbouncer/pgbouncer.ini; its auth_file, /etc/pgbouncer/userlist.txt, is written
# at start from PGBOUNCER_AUTH_USER / PGBOUNCER_AUTH_PASSWORD (a plain password in auth_file is
# allowed with auth_type scram-sha-256: PgBouncer then does SCRAM with clients and the server).
FROM debian:bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends "pgbouncer=1.18.*" \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /var/run/postgresql /var/log/postgresql \
  && chown postgres:postgres /etc/pgbouncer /var/run/postgresql /var/log/postgresql
COPY --chmod=0755 pgbouncer-entrypoint.sh /usr/local/bin/pgbouncer-entrypoint.sh
USER postgres
EXPOSE 6432
ENTRYPOINT ["/usr/local/bin/pgbouncer-entrypoint.sh"]
CMD ["/etc/pgbouncer/pgbouncer.ini"]
