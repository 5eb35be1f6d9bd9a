// `task-api cluster start --shards 3`: the tasks data on three shards, started once for this file
// in a temporary directory: main (the cluster's primary and its replica) and two more PostgreSQL
// servers, pg-s2 and pg-s3, each with a streaming replica of its own and migrated, reached by the
// API instances through PgBouncer (task_api_s2, task_api_s3) as main is. Checked: every shard's
// primary answers and holds the whole schema; PgBouncer sends each shard's database to its own
// server; every instance runs with TASK_SHARDS and the shards' URLs; the API's contract holds
// through NGINX; the tasks of many users land on more than one shard; a shard's primary killed
// comes back with start-one; stop leaves nothing running. Whatever happens, afterAll stops every
// recorded pid (cluster stop, then SIGKILL to anything still running).
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { bucketOf } from '../../src/infra/shards/buckets.js';
import { isAlive } from '../../src/operations/cluster/processes.js';
import { shardEnvOf } from '../../src/operations/cluster/shards.js';
import { uniqueEmail } from '../helpers/app.js';
import { clusterFixture, expectNginxAccepts, walkContract, type Brief } from '../helpers/cluster.js';
import { jsonRequest, runCli } from '../helpers/process.js';

interface Shard {
  name: string;
  url: string;
  readUrls: string[];
  primaryUrl: string;
}

interface Status {
  publicUrl: string;
  allAlive: boolean;
  instances: Brief[];
  primary: Brief;
  replicas: Brief[];
  pgbouncer: Brief;
  shards: Shard[];
  processes: (Brief & { port: number; role: string; shard?: string })[];
}

const fx = clusterFixture<Status>('task-api-cluster-shards-', ['--shards', '3', '--instances', '2', '--replicas', '1']);
const { cluster, status } = fx;

/** One query on a server, on a connection of its own. */
async function query<T extends Record<string, unknown>>(url: string, text: string): Promise<T[]> {
  const db = postgres(url, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    return (await db.unsafe(text)) as unknown as T[];
  } finally {
    await db.end({ timeout: 5 });
  }
}

/** A process's environment as the kernel holds it (Linux /proc). */
function environOf(pid: number): Record<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return Object.fromEntries(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

const tasksOn = async (shard: Shard) => Number((await query<{ n: number }>(shard.primaryUrl, 'select count(*)::int as n from tasks'))[0]!.n);

describe('task-api cluster start --shards 3', () => {
  it('starts main and two more shards, each a primary with a replica of its own; status lists them', async () => {
    const s = await status();
    expect(s).toEqual(fx.started());
    expect(s.allAlive).toBe(true);
    expect(s.shards.map((x) => x.name)).toEqual(['main', 's2', 's3']);
    const main = s.shards[0]!;
    expect(main.url).toBe(s.pgbouncer.url);
    expect(main.primaryUrl).toBe(s.primary.url);
    expect(main.readUrls).toEqual(s.replicas.map((r) => r.url));
    for (const shard of s.shards.slice(1)) {
      expect(shard.url).toBe(s.pgbouncer.url.replace(/\/task_api$/, `/task_api_${shard.name}`));
      expect(shard.primaryUrl).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/task_api$/);
      expect(shard.readUrls).toHaveLength(1);
    }
    // The main shard's servers stay primary and replicas; the others are named after their shard.
    expect(s.primary.name).toBe('primary');
    expect(s.replicas.map((r) => r.name)).toEqual(['replica-1']);
    expect(s.processes.filter((p) => p.shard).map((p) => `${p.name}:${p.role}:${p.shard}`)).toEqual([
      'pg-s2:postgres-primary:s2',
      'pg-s2-replica-1:postgres-replica:s2',
      'pg-s3:postgres-primary:s3',
      'pg-s3-replica-1:postgres-replica:s3',
    ]);
    // 3 primaries, 3 replicas, PgBouncer, Redis, RabbitMQ, 2 instances, NGINX, Prometheus.
    expect(s.processes).toHaveLength(13);
    for (const p of s.processes) expect(p.pid !== null && isAlive(p.pid), p.name).toBe(true);
  });

  it("every shard's primary answers, on its own server, and is migrated", async () => {
    const s = fx.started();
    const ports = new Set<string>();
    for (const shard of s.shards) {
      expect(await query(shard.primaryUrl, 'select 1 as one'), shard.name).toEqual([{ one: 1 }]);
      ports.add((await query<{ port: string }>(shard.primaryUrl, "select current_setting('port') as port"))[0]!.port);
      const applied = (await query<{ name: string }>(shard.primaryUrl, 'select name from schema_migrations')).map((r) => r.name);
      expect(applied, shard.name).toContain('0010_shards.sql');
    }
    expect(ports.size).toBe(3);
  });

  it("each shard's replica streams from its own primary", async () => {
    for (const shard of fx.started().shards) {
      expect(await query(shard.readUrls[0]!, 'select pg_is_in_recovery() as standby'), shard.name).toEqual([{ standby: true }]);
      const senders = await query<{ n: number }>(shard.primaryUrl, "select count(*)::int as n from pg_stat_replication where state = 'streaming'");
      expect(senders[0]!.n, shard.name).toBe(1);
    }
  });

  it("PgBouncer sends each shard's database to that shard's primary", async () => {
    const s = fx.started();
    for (const shard of s.shards) {
      const [viaPgBouncer] = await query<{ port: string }>(shard.url, "select current_setting('port') as port");
      expect(viaPgBouncer!.port, shard.name).toBe(new URL(shard.primaryUrl).port);
    }
  });

  it('runs every instance with TASK_SHARDS and each shard through PgBouncer (its replicas directly)', () => {
    const s = fx.started();
    expect(s.instances.map((i) => i.name)).toEqual(['api-1', 'api-2']);
    for (const i of s.instances) {
      const env = environOf(i.pid!);
      expect(env.TASK_SHARDS, i.name).toBe('s2,s3');
      for (const shard of s.shards.slice(1)) {
        const key = shard.name.toUpperCase();
        expect(env[`SHARD_${key}_URL`], i.name).toBe(shard.url);
        expect(env[`SHARD_${key}_READ_URLS`], i.name).toBe(shard.readUrls.join(','));
      }
      expect(env.DATABASE_URL, i.name).toBe(s.shards[0]!.url);
      expect(env.DATABASE_PREPARE, i.name).toBe('false');
    }
  });

  it('gives an operational command (shardEnvOf) every shard\'s primary itself', () => {
    const s = fx.started();
    expect(shardEnvOf(fx.dir())).toEqual({
      DATABASE_URL: s.shards[0]!.primaryUrl,
      TASK_SHARDS: 's2,s3',
      SHARD_S2_URL: s.shards[1]!.primaryUrl,
      SHARD_S2_READ_URLS: s.shards[1]!.readUrls.join(','),
      SHARD_S3_URL: s.shards[2]!.primaryUrl,
      SHARD_S3_READ_URLS: s.shards[2]!.readUrls.join(','),
    });
  });

  it('nginx -t accepts the configuration it runs with', () => {
    expectNginxAccepts(fx.dir());
  });

  it("holds the API's contract through NGINX (register, login, refresh, tasks, lists, admin)", async () => {
    await walkContract(
      fx.started().publicUrl,
      fx.started().primary.url,
      fx.started().shards.map((x) => x.primaryUrl),
    );
  });

  it("spreads the users' tasks over more than one shard", async () => {
    const s = fx.started();
    const before = await Promise.all(s.shards.map(tasksOn));
    const USERS = 20;
    for (let n = 0; n < USERS; n++) {
      const reg = await jsonRequest(`${s.publicUrl}/v1/auth/register`, 'POST', { email: uniqueEmail('shards'), password: 'correct horse battery' });
      expect(reg.status).toBe(201);
      const task = await jsonRequest(`${s.publicUrl}/v1/tasks`, 'POST', { title: `task of user ${n}` }, reg.body!.accessToken as string);
      expect(task.status, JSON.stringify(task.body)).toBe(201);
    }
    const after = await Promise.all(s.shards.map(tasksOn));
    const added = after.map((n, i) => n - before[i]!);
    expect(added.reduce((a, b) => a + b, 0)).toBe(USERS);
    expect(added.filter((n) => n > 0).length, `tasks added per shard: ${added.join(', ')}`).toBeGreaterThanOrEqual(2);
  });

  it('moves a bucket with `task-api shards move --dir` while its owner writes through NGINX: every acknowledged task is on the new shard', async () => {
    const s = fx.started();
    const reg = await jsonRequest(`${s.publicUrl}/v1/auth/register`, 'POST', { email: uniqueEmail('mover'), password: 'correct horse battery' });
    expect(reg.status).toBe(201);
    const token = reg.body!.accessToken as string;
    const userId = (reg.body!.user as { id: string }).id;
    const bucket = bucketOf(userId);
    const before = JSON.parse((await runCli(['shards', 'status', '--json', '--dir', fx.dir()], {})).stdout) as { shards: { name: string; buckets: number }[] };
    const from = (await query<{ shard: string }>(s.shards[0]!.primaryUrl, `select shard from shard_map where bucket = ${bucket}`))[0]!.shard;
    const to = s.shards.map((x) => x.name).find((n) => n !== from)!;
    // The owner's writes through NGINX for as long as the move runs (bounded), each recorded.
    let moving = true;
    const acknowledged: string[] = [];
    const refused: number[] = [];
    const writes = (async () => {
      for (let i = 0; i < 2000 && moving; i++) {
        const res = await jsonRequest(`${s.publicUrl}/v1/tasks`, 'POST', { title: `during move ${i}` }, token);
        if (res.status === 201) acknowledged.push(res.body!.id as string);
        else refused.push(res.status);
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const moved = await runCli(['shards', 'move', '--bucket', String(bucket), '--to', to, '--grace-ms', '500', '--dir', fx.dir()], {});
    moving = false;
    await writes;
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    expect(moved.stdout).toMatch(/writes were held for \d+ ms/);
    // Only the fence's 503 (with Retry-After, retried by nobody here) may refuse a write.
    expect(refused.filter((c) => c !== 503)).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(0);
    const target = s.shards.find((x) => x.name === to)!;
    const source = s.shards.find((x) => x.name === from)!;
    const stored = new Set((await query<{ id: string }>(target.primaryUrl, `select id::text from tasks where user_id = '${userId}'`)).map((r) => r.id));
    for (const id of acknowledged) expect(stored.has(id), id).toBe(true);
    expect(stored.size).toBe(acknowledged.length);
    expect(await query(source.primaryUrl, `select 1 from tasks where user_id = '${userId}'`)).toEqual([]);
    // The owner reads them all through NGINX, from the new shard (or its replica).
    const list = await jsonRequest(`${s.publicUrl}/v1/tasks?limit=100`, 'GET', undefined, token);
    expect((list.body!.data as unknown[]).length).toBe(Math.min(100, acknowledged.length));
    const after = JSON.parse((await runCli(['shards', 'status', '--json', '--dir', fx.dir()], {})).stdout) as { shards: { name: string; buckets: number }[]; skew: number };
    const count = (st: typeof before, n: string) => st.shards.find((x) => x.name === n)!.buckets;
    expect(count(after, to)).toBe(count(before, to) + 1);
    expect(count(after, from)).toBe(count(before, from) - 1);
    expect(typeof after.skew).toBe('number');
  });

  it("reads each shard's owners from that shard's replica: every instance watches the three replicas and routes reads to them", async () => {
    const s = fx.started();
    const metricsUrl = (s.instances[0] as Brief & { metricsUrl: string }).metricsUrl;
    const text = await (await fetch(metricsUrl)).text();
    const up = [...text.matchAll(/^db_replica_up\{[^}]*replica="([^"]+)"[^}]*\} 1$/gm)].map((m) => m[1]);
    const replicaPorts = s.processes.filter((p) => p.role === 'replica' || /replica/.test(p.name)).map((p) => `127.0.0.1:${p.port}`);
    expect(new Set(up)).toEqual(new Set(replicaPorts));
    expect(up).toHaveLength(3);
    expect(text).toMatch(/^shard_map_version(\{[^}]*\})? \d+$/m);
    // Reads went to replicas (on either instance: NGINX spreads the requests).
    const all = (await Promise.all(s.instances.map(async (i) => (await fetch((i as Brief & { metricsUrl: string }).metricsUrl)).text()))).join('\n');
    const routed = [...all.matchAll(/^db_reads_routed_total\{[^}]*target="replica"[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(routed).toBeGreaterThan(0);
  });

  it("relays every shard's outbox: each shard's task events are published", async () => {
    const s = fx.started();
    const pending = async () => Promise.all(s.shards.map(async (x) => Number((await query<{ n: number }>(x.primaryUrl, 'select count(*)::int as n from outbox where published_at is null'))[0]!.n)));
    for (let i = 0; i < 100 && (await pending()).some((n) => n > 0); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await pending()).toEqual(s.shards.map(() => 0));
    const published = await Promise.all(s.shards.map(async (x) => Number((await query<{ n: number }>(x.primaryUrl, "select count(*)::int as n from outbox where type = 'task.created'"))[0]!.n)));
    expect(published.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  });

  it("a shard's primary killed (SIGKILL): an instance restarted meanwhile starts and serves the other shards' owners, that shard's owners get 503, and start-one brings it back", async () => {
    const s = fx.started();
    // A user on main and one on s2 (the map spreads the buckets evenly: a few sign-ups find both).
    const map = new Map((await query<{ bucket: number; shard: string }>(s.shards[0]!.primaryUrl, 'select bucket, shard from shard_map')).map((r) => [r.bucket, r.shard]));
    const users = new Map<string, string>();
    for (let i = 0; i < 60 && !(users.has('main') && users.has('s2')); i++) {
      const reg = await jsonRequest(`${s.publicUrl}/v1/auth/register`, 'POST', { email: uniqueEmail('down'), password: 'correct horse battery' });
      const shard = map.get(bucketOf((reg.body!.user as { id: string }).id))!;
      if (!users.has(shard)) users.set(shard, reg.body!.accessToken as string);
    }
    const create = (shard: string) => jsonRequest(`${s.publicUrl}/v1/tasks`, 'POST', { title: `on ${shard}` }, users.get(shard));
    const killed = await cluster('kill', 'pg-s2');
    expect(killed.code, killed.stderr).toBe(0);
    const down = await status();
    expect(down.processes.find((p) => p.name === 'pg-s2')!.alive).toBe(false);
    expect(down.allAlive).toBe(false);
    const restarted = await cluster('restart', 'api-1');
    expect(restarted.code, restarted.stderr).toBe(0);
    const health = await jsonRequest(`${(await status()).instances[0]!.url}/health`, 'GET');
    expect(health.status).toBe(200);
    expect(JSON.stringify(health.body)).toMatch(/shard:s2/);
    for (let i = 0; i < 4; i++) expect((await create('main')).status).toBe(201);
    const refused = await create('s2');
    expect(refused.status).toBe(503);
    const back = await cluster('start-one', 'pg-s2');
    expect(back.code, back.stderr).toBe(0);
    expect((await status()).allAlive).toBe(true);
    expect(await query(fx.started().shards[1]!.primaryUrl, 'select 1 as one')).toEqual([{ one: 1 }]);
    // The pools reconnect by themselves: the owner on s2 writes again.
    let status201 = 0;
    for (let i = 0; i < 50 && status201 === 0; i++) {
      if ((await create('s2')).status === 201) status201++;
      else await new Promise((r) => setTimeout(r, 200));
    }
    expect(status201).toBe(1);
    // Seven cluster commands, each a process of its own, and a restart: minutes on a loaded machine.
  }, 240_000);

  it('stop ends every recorded process, the shards\' servers too, and frees its ports', async () => {
    await fx.stopAndCheck();
    const after = await status();
    expect(after.processes.every((p) => p.pid === null && !p.alive)).toBe(true);
  });
});
