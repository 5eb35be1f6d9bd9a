// The installed programs the local topology runs, found before anything starts: a missing one
// stops `cluster start` at once with the package to install, not half way with a spawn error.
import { postgresBin } from './postgres.js';
import { findBinary } from './processes.js';
import { rabbitmqAvailable, RABBITMQ_SERVER } from './rabbitmq.js';

export interface Binaries {
  nginx: string;
  redis: string;
  prometheus: string;
  /** `cluster start --ha` only: PostgreSQL under Patroni, etcd for its leader key, HAProxy in front. */
  ha?: { patroni: string; etcd: string; haproxy: string };
}

/** Each program's absolute path; throws naming every missing one and its Debian package. */
export function requireBinaries(pathEnv: string, opts: { ha?: boolean } = {}): Binaries {
  const missing: string[] = [];
  const need = (name: string, pkg: string): string => {
    const found = findBinary(name, pathEnv);
    if (!found) missing.push(`${name} (apt-get install -y ${pkg})`);
    return found ?? name;
  };
  const bins: Binaries = { nginx: need('nginx', 'nginx'), redis: need('redis-server', 'redis-server'), prometheus: need('prometheus', 'prometheus') };
  if (opts.ha) bins.ha = { patroni: need('patroni', 'patroni'), etcd: need('etcd', 'etcd-server'), haproxy: need('haproxy', 'haproxy') };
  // PgBouncer is started by name (pgbouncer.ts): it must be on PATH itself.
  need('pgbouncer', 'pgbouncer');
  if (!postgresBin()) missing.push('PostgreSQL server (apt-get install -y postgresql)');
  if (!rabbitmqAvailable()) missing.push(`${RABBITMQ_SERVER} (apt-get install -y rabbitmq-server)`);
  if (missing.length > 0) throw new Error(`task-api cluster needs: ${missing.join(', ')}`);
  return bins;
}
