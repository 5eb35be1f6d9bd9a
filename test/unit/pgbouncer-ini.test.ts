// deploy/pgbouncer/pgbouncer.ini: the production settings the seed asked for, and what the
// local topology's launcher (src/operations/cluster/pgbouncer.ts) changes of it. The rendered
// file is run by the real pgbouncer in test/system/pgbouncer.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseIni, PGBOUNCER_TEMPLATE, renderPgBouncerIni } from '../../src/operations/cluster/pgbouncer.js';

const template = readFileSync(PGBOUNCER_TEMPLATE, 'utf8');

describe('deploy/pgbouncer/pgbouncer.ini', () => {
  it("holds the seed's pool settings and authenticates with SCRAM against an auth_file", () => {
    const pgb = parseIni(template).get('pgbouncer')!;
    expect(Object.fromEntries(pgb)).toMatchObject({
      pool_mode: 'transaction',
      max_client_conn: '1000',
      default_pool_size: '25',
      reserve_pool_size: '5',
      auth_type: 'scram-sha-256',
      auth_file: '/etc/pgbouncer/userlist.txt',
      listen_port: '6432',
    });
    expect(template).toContain('userlist.txt holds one line per user');
    expect(parseIni(template).get('databases')!.get('taskdb')).toBe('host=postgres port=5432 dbname=taskdb');
  });

  it('renders for loopback: port, trust, a wildcard (or named databases) to the local primary, the pool settings kept', () => {
    const local = parseIni(renderPgBouncerIni(template, { dir: '/d', port: 16432, primaryPort: 15432, logFile: '/d/l', authFile: '/d/userlist.txt' }));
    expect(Object.fromEntries(local.get('databases')!)).toEqual({ '*': 'host=127.0.0.1 port=15432' });
    expect(Object.fromEntries(local.get('pgbouncer')!)).toMatchObject({
      listen_addr: '127.0.0.1',
      listen_port: '16432',
      auth_type: 'trust',
      auth_file: '/d/userlist.txt',
      admin_users: 'postgres',
      unix_socket_dir: '',
      logfile: '',
      pidfile: '',
      pool_mode: 'transaction',
      max_client_conn: '1000',
      default_pool_size: '25',
      reserve_pool_size: '5',
    });
    const named = parseIni(
      renderPgBouncerIni(template, { dir: '/d', port: 1, primaryPort: 2, logFile: '/d/l', authFile: '/a', databases: ['tasks', 'other'], poolSize: 3 }),
    );
    expect(Object.fromEntries(named.get('databases')!)).toEqual({ tasks: 'host=127.0.0.1 port=2 dbname=tasks', other: 'host=127.0.0.1 port=2 dbname=other' });
    expect(named.get('pgbouncer')!.get('default_pool_size')).toBe('3');
  });
});
