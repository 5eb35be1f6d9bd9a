// The capacity model behind docs/capacity.md, docs/capacity.svg and `task-api capacity`: one set
// of parameters and one function, so the doc's table, the chart and the command cannot disagree.
// Pure: no I/O. Every measured figure names the run it comes from; every assumption says why.

/** A figure with where it comes from, shown in the doc's parameter table. */
export interface Sourced {
  value: number;
  source: string;
}

/** Measured on the project's own runs (docs/performance.md, or by hand as stated). */
export const MEASURED = {
  rpsPerInstance: {
    value: 1562,
    source:
      'docs/performance.md, "Scale-out topology": `npm run bench -- --topology --runs 2 --duration 10` on 2026-11-30, row "NGINX -> 1 instance (via PgBouncer, reads on the replica): max", the mixed 80/15/5 workload through NGINX, median of 2 repetitions; 2 cores shared with NGINX, PgBouncer, PostgreSQL, a replica and Redis',
  },
  dbListCeiling: {
    value: 7177,
    source: 'docs/performance.md, "The table" (`npm run bench`, 2026-11-30, commit 333882a): "ceiling: DB list of 20", postgres.js running the list SQL, 2 cores',
  },
  dbCreateCeiling: {
    value: 6986,
    source: 'the same run: "ceiling: DB create transaction"',
  },
  dbPatchCeiling: {
    value: 2653,
    source: 'the same run: "ceiling: DB patch transaction"',
  },
  redisMsPerRequest: {
    value: 0.05,
    source: 'docs/performance.md, "Against the seed\'s stack": Redis CPU per request of the mixed closed row (11-14 % of a core at 2,296 req/s), `top` beside the profile run of 2026-11-30',
  },
  bytesPerTask: {
    value: 1000,
    source:
      'by hand on 2026-11-30 for this page: `task-api seed --users 200 --tasks-per-user 500` into a scratch database, then the sum of pg_total_relation_size over the tasks partitions: 99,958,784 bytes for 100,000 tasks (rows and indexes)',
  },
  restoreTasksPerSecond: {
    value: 17000,
    source:
      'the same database: `pg_dump -Fc` (1.6 s, 5.9 MB) and `pg_restore --exit-on-error --no-owner` into an empty database in 5.85 s for 100,000 tasks, one job, on the loaded 2-core machine (load average 9)',
  },
} as const satisfies Record<string, Sourced>;

/** The workload the measured figures were taken with (the bench's mixed row). */
export const MIX = { reads: 0.8, creates: 0.15, patches: 0.05 } as const;

/** Defaults of the flags: assumptions, each with its reason. */
export const ASSUMED = {
  requestsPerUserDay: {
    value: 50,
    source:
      "every registered user counted as active every day (conservative: Xu's Twitter estimate assumes 50 % of monthly users daily, and SaaS DAU/MAU benchmarks are 10-30 %), 4 sessions a day of the load test's story (loadtest/scenario.ts: login, list, 3 creates, 2 filtered lists, open, complete, delete, a refresh every other session, list: about 12 requests)",
  },
  peakFactor: {
    value: 3,
    source:
      'peak second over the day\'s average: a task list is used in working hours, so a day\'s requests in about 8 busy hours gives 24 / 8 = 3; above the 2x of A. Xu, System Design Interview, ch. 2 ("Peek QPS = 2 * QPS"), within the 2-5x rule of thumb of capacity-estimation guides',
  },
  cpuTarget: {
    value: 0.6,
    source: 'each API instance, PostgreSQL server and Redis primary planned at 60 % of its measured capacity: a spike, a slow dependency or a GC burst has 40 % to grow into',
  },
  tasksPerUser: {
    value: 100,
    source: 'stored tasks per user, completed ones included (the API keeps them until deleted); an assumption, not a measurement: the seed gives none',
  },
  maxTasksPerShard: {
    value: 100_000_000,
    source:
      'about 100 GB of tasks and indexes per shard (bytes per task above), restored in about 1.6 h at the measured single-job rate: the restore time of one shard is what bounds its size (docs/runbooks/backup-restore.md); the list p99 was flat from 10k to 10M tasks (docs/performance.md, "Scale"), larger tables are not measured',
  },
} as const satisfies Record<string, Sourced>;

/** Fixed rules of the topology (docs/capacity.md explains each). */
export const TOPOLOGY = {
  minInstances: 2, // one instance down or draining in a rolling deploy still leaves one serving
  minReplicasPerShard: 1, // the failover standby, which also takes reads
  poolMaxPerInstance: 10, // DATABASE_POOL_MAX's default, per PostgreSQL server an instance uses
  pgbouncerMaxClientConn: 1000, // deploy/pgbouncer/pgbouncer.ini
  pgbouncerServerConnsPerDb: 30, // default_pool_size 25 + reserve_pool_size 5
  postgresMaxConnections: 100, // PostgreSQL's default max_connections
  minPgbouncers: 2,
  redisNodesPerPrimary: 2, // a primary and its Sentinel-promoted replica; the 3 Sentinels run beside other processes
  rabbitNodes: 3, // quorum queues need a majority: 3 nodes tolerate one down
} as const;

/** Monthly USD, the seed's AWS cost table ("AWS Cost Estimates (Phase 2)") as reference prices. */
export const PRICES = {
  apiInstance: { value: 30, source: 'EC2 t3.medium: the seed\'s "3x t3.medium, $90", one instance each' },
  postgres: { value: 140, source: 'RDS PostgreSQL db.t3.large, $140 (2 vCPU: the DB ceilings above were measured on 2 cores)' },
  redisNode: { value: 30, source: 'ElastiCache cache.t3.small, $30' },
  rabbitNode: { value: 30, source: 'not in the seed\'s table: priced as its EC2 t3.medium, $30' },
  pgbouncer: { value: 30, source: 'not in the seed\'s table: priced as its EC2 t3.medium, $30' },
  loadBalancer: { value: 20, source: 'ALB, $20' },
  monitoring: { value: 15, source: 'CloudWatch logs and metrics, $15' },
} as const satisfies Record<string, Sourced>;

/** The seed's three tiers. */
export const TIERS = [100_000, 1_000_000, 10_000_000] as const;

export const MAX_USERS = 10_000_000_000;

export interface CapacityInput {
  users: number;
  rpsPerInstance: number;
  requestsPerUserDay: number;
  peakFactor: number;
  cpuTarget: number;
  tasksPerUser: number;
}

export const DEFAULTS: Omit<CapacityInput, 'users'> = {
  rpsPerInstance: MEASURED.rpsPerInstance.value,
  requestsPerUserDay: ASSUMED.requestsPerUserDay.value,
  peakFactor: ASSUMED.peakFactor.value,
  cpuTarget: ASSUMED.cpuTarget.value,
  tasksPerUser: ASSUMED.tasksPerUser.value,
};

export interface CapacityPlan {
  input: CapacityInput;
  load: { avgRps: number; peakRps: number; peakReads: number; peakWrites: number; tasks: number };
  apiInstances: number;
  shards: { count: number; byRows: number; byWrites: number; tasksPerShard: number; restoreHoursPerShard: number };
  postgres: { primaries: number; replicasPerShard: number; replicas: number; servers: number };
  pgbouncer: { count: number; clientConnections: number; serverConnectionsPerPostgres: number };
  redis: { primaries: number; nodes: number };
  rabbitmq: { nodes: number; eventsPerSecond: number };
  cost: { api: number; postgres: number; redis: number; rabbitmq: number; pgbouncer: number; fixed: number; total: number };
  notes: string[];
}

/** A bad input, naming the flag that carries it. */
export class CapacityInputError extends Error {}

const FLAG_OF: Record<keyof CapacityInput, string> = {
  users: '--users',
  rpsPerInstance: '--rps-per-instance',
  requestsPerUserDay: '--requests-per-user-day',
  peakFactor: '--peak-factor',
  cpuTarget: '--cpu-target',
  tasksPerUser: '--tasks-per-user',
};

export function flagOf(key: keyof CapacityInput): string {
  return FLAG_OF[key];
}

/** Throws CapacityInputError naming the first out-of-range field's flag. */
export function validateInput(input: CapacityInput): void {
  const check = (key: keyof CapacityInput, ok: (v: number) => boolean, rule: string) => {
    const v = input[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new CapacityInputError(`${FLAG_OF[key]} must be ${rule} (got ${String(v)})`);
  };
  check('users', (v) => Number.isInteger(v) && v >= 1 && v <= MAX_USERS, 'a whole number from 1 to 10,000,000,000');
  check('rpsPerInstance', (v) => v > 0 && v <= 1_000_000, 'a number of requests per second above 0 (at most 1,000,000)');
  check('requestsPerUserDay', (v) => v > 0 && v <= 1_000_000, 'a number of requests above 0 (at most 1,000,000)');
  check('peakFactor', (v) => v >= 1 && v <= 1000, 'a number from 1 to 1000');
  check('cpuTarget', (v) => v > 0 && v <= 1, 'a fraction above 0 and at most 1');
  check('tasksPerUser', (v) => v >= 0 && v <= 10_000_000, 'a number from 0 to 10,000,000');
}

/** Seconds in a day. */
const DAY = 86_400;

/** Writes a primary takes per second at the CPU target: creates and patches in the mix's proportion. */
export function writesPerPrimary(cpuTarget: number): number {
  const writes = MIX.creates + MIX.patches;
  const secondsPerWrite = MIX.creates / writes / MEASURED.dbCreateCeiling.value + MIX.patches / writes / MEASURED.dbPatchCeiling.value;
  return cpuTarget / secondsPerWrite;
}

/** Reads a replica takes per second at the CPU target (every read counted as a cache miss). */
export function readsPerReplica(cpuTarget: number): number {
  return MEASURED.dbListCeiling.value * cpuTarget;
}

export function planCapacity(input: CapacityInput): CapacityPlan {
  validateInput(input);
  const { users, rpsPerInstance, requestsPerUserDay, peakFactor, cpuTarget, tasksPerUser } = input;
  const avgRps = (users * requestsPerUserDay) / DAY;
  const peakRps = avgRps * peakFactor;
  const peakReads = peakRps * MIX.reads;
  const peakWrites = peakRps * (MIX.creates + MIX.patches);
  const tasks = users * tasksPerUser;

  // Enough instances at the target with one of them down (+1), never fewer than two.
  const apiInstances = Math.max(TOPOLOGY.minInstances, Math.ceil(peakRps / (rpsPerInstance * cpuTarget)) + 1);

  const byRows = Math.ceil(tasks / ASSUMED.maxTasksPerShard.value);
  const byWrites = Math.ceil(peakWrites / writesPerPrimary(cpuTarget));
  const shardCount = Math.max(1, byRows, byWrites);
  const tasksPerShard = tasks / shardCount;

  const replicasPerShard = Math.max(TOPOLOGY.minReplicasPerShard, Math.ceil(peakReads / shardCount / readsPerReplica(cpuTarget)));
  const replicas = shardCount * replicasPerShard;
  const servers = shardCount + replicas;

  // Each instance holds a pool on every PostgreSQL server it uses: each shard's primary and replicas.
  const clientConnections = apiInstances * TOPOLOGY.poolMaxPerInstance * servers;
  const pgbouncers = Math.max(TOPOLOGY.minPgbouncers, Math.ceil(clientConnections / (TOPOLOGY.pgbouncerMaxClientConn * cpuTarget)));
  const serverConnectionsPerPostgres = pgbouncers * TOPOLOGY.pgbouncerServerConnsPerDb;

  const redisPrimaries = Math.max(1, Math.ceil((peakRps * MEASURED.redisMsPerRequest.value) / 1000 / cpuTarget));
  const redisNodes = redisPrimaries * TOPOLOGY.redisNodesPerPrimary;

  const cost = {
    api: apiInstances * PRICES.apiInstance.value,
    postgres: servers * PRICES.postgres.value,
    redis: redisNodes * PRICES.redisNode.value,
    rabbitmq: TOPOLOGY.rabbitNodes * PRICES.rabbitNode.value,
    pgbouncer: pgbouncers * PRICES.pgbouncer.value,
    fixed: PRICES.loadBalancer.value + PRICES.monitoring.value,
    total: 0,
  };
  cost.total = cost.api + cost.postgres + cost.redis + cost.rabbitmq + cost.pgbouncer + cost.fixed;

  const notes: string[] = [];
  if (shardCount > 1) notes.push(`${shardCount} shards: TASK_SHARDS with a SHARD_<NAME>_URL per shard (docs/scaling.md)`);
  if (redisPrimaries > 1) {
    notes.push(
      `${redisPrimaries} Redis primaries at the CPU target: the code speaks to one Redis (REDIS_URL or one Sentinel group); beyond one primary, split the response cache from the limiter and tokens, or move socket I/O off Redis's main thread (io-threads), and measure again`,
    );
  }
  if (serverConnectionsPerPostgres > TOPOLOGY.postgresMaxConnections) {
    notes.push(
      `${pgbouncers} PgBouncers x ${TOPOLOGY.pgbouncerServerConnsPerDb} server connections = ${serverConnectionsPerPostgres} per PostgreSQL server: raise max_connections above ${TOPOLOGY.postgresMaxConnections}, or lower default_pool_size`,
    );
  }
  return {
    input,
    load: { avgRps, peakRps, peakReads, peakWrites, tasks },
    apiInstances,
    shards: { count: shardCount, byRows, byWrites, tasksPerShard, restoreHoursPerShard: tasksPerShard / MEASURED.restoreTasksPerSecond.value / 3600 },
    postgres: { primaries: shardCount, replicasPerShard, replicas, servers },
    pgbouncer: { count: pgbouncers, clientConnections, serverConnectionsPerPostgres },
    redis: { primaries: redisPrimaries, nodes: redisNodes },
    rabbitmq: { nodes: TOPOLOGY.rabbitNodes, eventsPerSecond: peakWrites },
    cost,
    notes,
  };
}
