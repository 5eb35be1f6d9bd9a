// `cluster start --ha`: what is decided before any program runs (the programs themselves run in
// test/system/pg-failover.test.ts): HAProxy's configuration, Patroni's timing rule, the flags.
import { describe, expect, it } from 'vitest';
import { PATRONI_TIMING, patroniCommand, patroniConfig, renderHaproxyConfig } from '../../src/operations/cluster/patroni.js';
import { clusterCommand } from '../../src/operations/cluster/index.js';
import { EDGE_DEFAULTS } from '../../src/cluster-config.js';

describe('cluster --ha', () => {
  it('HAProxy sends its primary port to the member whose Patroni answers /primary, and cuts sessions of a member marked down', () => {
    const cfg = renderHaproxyConfig({
      primaryPort: 5000,
      replicaPort: 5001,
      statsPort: 7000,
      members: [
        { name: 'patroni-1', pgPort: 6001, restPort: 8001 },
        { name: 'patroni-2', pgPort: 6002, restPort: 8002 },
      ],
    });
    const section = (name: string) => cfg.split(/\n(?=listen )/).find((s) => s.startsWith(`listen ${name}`)) ?? '';
    expect(section('primary')).toContain('bind 127.0.0.1:5000');
    expect(section('primary')).toContain('option httpchk OPTIONS /primary');
    expect(section('replicas')).toContain('option httpchk OPTIONS /replica');
    for (const s of [section('primary'), section('replicas')]) {
      expect(s).toContain('server patroni-1 127.0.0.1:6001 check port 8001');
      expect(s).toContain('server patroni-2 127.0.0.1:6002 check port 8002');
    }
    expect(cfg).toMatch(/default-server .*on-marked-down shutdown-sessions/);
    expect(cfg).not.toMatch(/0\.0\.0\.0|\*:/);
  });

  it("keeps Patroni's rule: loop_wait + 2 x retry_timeout within ttl, ttl at least 20", () => {
    expect(PATRONI_TIMING.loop_wait + 2 * PATRONI_TIMING.retry_timeout).toBeLessThanOrEqual(PATRONI_TIMING.ttl);
    expect(PATRONI_TIMING.ttl).toBeGreaterThanOrEqual(20);
  });

  it('refuses --sync without --ha, and --ha with shards, before starting anything', async () => {
    const config = { edge: EDGE_DEFAULTS, inherited: {} };
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => errors.push(line);
    try {
      expect(await clusterCommand(['start', '--sync', '--dir', '/nonexistent/ha'], config)).toBe(2);
      expect(await clusterCommand(['start', '--ha', '--shards', '2', '--dir', '/nonexistent/ha'], config)).toBe(2);
      expect(await clusterCommand(['start', '--netns', '--dir', '/nonexistent/ha'], config)).toBe(2);
      expect(await clusterCommand(['partition', '--dir', '/nonexistent/ha'], config)).toBe(2);
    } finally {
      console.error = original;
    }
    expect(errors.join('\n')).toMatch(/--sync is a setting of --ha[\s\S]*--ha does not take --shards[\s\S]*--netns is a setting of --ha[\s\S]*partition needs the name of a member/);
  });

  it('--netns: a member listens on its namespace address, reaches etcd on the bridge, lets the subnet in, and runs inside its namespace', () => {
    const m = { name: 'patroni-1', pgPort: 6001, restPort: 8001, dir: '/tmp/x/patroni-1', host: '10.231.7.11', namespace: 'taskapi-ab12-p1' };
    const cfg = patroniConfig(m, { etcdPort: 2379, sync: true, etcdHost: '10.231.7.1', subnet: '10.231.7.0/24' }) as {
      restapi: { listen: string; connect_address: string };
      etcd: { hosts: string[] };
      postgresql: { listen: string; connect_address: string };
      bootstrap: { pg_hba: string[]; dcs: { postgresql: { parameters: Record<string, unknown> } } };
    };
    expect(cfg.restapi).toEqual({ listen: '10.231.7.11:8001', connect_address: '10.231.7.11:8001' });
    expect(cfg.postgresql.listen).toBe('10.231.7.11:6001');
    expect(cfg.postgresql.connect_address).toBe('10.231.7.11:6001');
    expect(cfg.etcd.hosts).toEqual(['10.231.7.1:2379']);
    expect(cfg.bootstrap.pg_hba).toEqual(expect.arrayContaining(['host all all 10.231.7.0/24 trust', 'host replication all 10.231.7.0/24 trust']));
    expect(cfg.bootstrap.dcs.postgresql.parameters.wal_sender_timeout).toBe('5s');
    const cmd = patroniCommand(m, '/usr/bin/patroni', '/usr/bin');
    expect(cmd.command).toMatch(/\/ip$/);
    expect(cmd.args.slice(0, 3)).toEqual(['netns', 'exec', 'taskapi-ab12-p1']);
    expect(cmd.args.slice(-2)).toEqual(['/usr/bin/patroni', '/tmp/x/patroni-1/patroni.yml']);
    // Without --netns: loopback, as before.
    const plain = patroniConfig({ ...m, host: '127.0.0.1', namespace: undefined }, { etcdPort: 2379, sync: true }) as typeof cfg;
    expect(plain.postgresql.listen).toBe('127.0.0.1:6001');
    expect(plain.etcd.hosts).toEqual(['127.0.0.1:2379']);
    expect(plain.bootstrap.dcs.postgresql.parameters.wal_sender_timeout).toBeUndefined();
    expect(renderHaproxyConfig({ primaryPort: 5000, replicaPort: 5001, statsPort: 7000, members: [{ ...m }] })).toContain('server patroni-1 10.231.7.11:6001 check port 8001');
  });
});
