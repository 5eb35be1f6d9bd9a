// The capacity plan as text (`task-api capacity`) and as the generated part of docs/capacity.md.
import { ASSUMED, MEASURED, PRICES, TIERS, DEFAULTS, planCapacity, readsPerReplica, writesPerPrimary, type CapacityPlan, type Sourced } from './model.js';

/** 1234567.8 -> "1,234,568"; with decimals, "1,234,567.80". Locale-free, so the doc is the same everywhere. */
export function group(n: number, decimals = 0): string {
  const [int, frac] = Math.abs(n).toFixed(decimals).split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${n < 0 ? '-' : ''}${grouped}${frac ? `.${frac}` : ''}`;
}

/** 100000 -> "100k", 1000000 -> "1M", 2500000 -> "2.5M". */
export function shortUsers(n: number): string {
  const unit = n >= 1e9 ? ['B', 1e9] : n >= 1e6 ? ['M', 1e6] : n >= 1e3 ? ['k', 1e3] : ['', 1];
  const v = n / (unit[1] as number);
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit[0] as string}`;
}

const usd = (n: number) => `$${group(n)}`;

/** The rows of a plan: label, value. Shared by the command's text and the doc's tier table. */
function rows(p: CapacityPlan): [string, string][] {
  return [
    ['users', group(p.input.users)],
    ['requests per second, daily average', group(p.load.avgRps, 1)],
    ['requests per second at peak', group(p.load.peakRps, 1)],
    ['  of which reads (80 %) / writes (20 %)', `${group(p.load.peakReads)} / ${group(p.load.peakWrites)}`],
    ['API instances (target holds with one down)', group(p.apiInstances)],
    ['shards (by rows / by writes)', `${p.shards.count} (${p.shards.byRows} / ${p.shards.byWrites})`],
    ['tasks stored / per shard', `${group(p.load.tasks)} / ${group(p.shards.tasksPerShard)}`],
    ['restore of one shard, hours (one job)', group(p.shards.restoreHoursPerShard, 1)],
    ['PostgreSQL primaries', group(p.postgres.primaries)],
    ['read replicas (per shard)', `${p.postgres.replicas} (${p.postgres.replicasPerShard})`],
    ['PgBouncer (client connections)', `${p.pgbouncer.count} (${group(p.pgbouncer.clientConnections)})`],
    ['Redis nodes (primaries)', `${p.redis.nodes} (${p.redis.primaries})`],
    ['RabbitMQ nodes (events published per second at peak)', `${p.rabbitmq.nodes} (${group(p.rabbitmq.eventsPerSecond)})`],
    ['monthly cost, USD', usd(p.cost.total)],
  ];
}

function costRows(p: CapacityPlan): [string, string][] {
  return [
    [`API instances x ${usd(PRICES.apiInstance.value)}`, usd(p.cost.api)],
    [`PostgreSQL servers x ${usd(PRICES.postgres.value)}`, usd(p.cost.postgres)],
    [`Redis nodes x ${usd(PRICES.redisNode.value)}`, usd(p.cost.redis)],
    [`RabbitMQ nodes x ${usd(PRICES.rabbitNode.value)}`, usd(p.cost.rabbitmq)],
    [`PgBouncer x ${usd(PRICES.pgbouncer.value)}`, usd(p.cost.pgbouncer)],
    ['load balancer and monitoring', usd(p.cost.fixed)],
    ['total', usd(p.cost.total)],
  ];
}

/** What `task-api capacity --users N` prints. */
export function planText(p: CapacityPlan): string {
  const i = p.input;
  const lines = [
    `capacity for ${group(i.users)} users: ${i.requestsPerUserDay} requests per user per day, peak factor ${i.peakFactor}, ` +
      `${group(i.rpsPerInstance)} req/s per instance at ${Math.round(i.cpuTarget * 100)} % CPU, ${group(i.tasksPerUser)} tasks per user`,
  ];
  const all = [...rows(p).slice(1), ['', ''] as [string, string], ...costRows(p)];
  const width = Math.max(...all.map(([k]) => k.length));
  for (const [k, v] of all) lines.push(k === '' ? '' : `  ${k.padEnd(width)}  ${v}`);
  for (const n of p.notes) lines.push(`note: ${n}`);
  lines.push('model and sources: docs/capacity.md');
  return lines.join('\n');
}

function sourceTable(title: string, entries: Record<string, Sourced>, unit: (k: string, v: number) => string): string[] {
  const out = [`| ${title} | value | source |`, '|---|---:|---|'];
  for (const [k, s] of Object.entries(entries)) out.push(`| ${k} | ${unit(k, s.value)} | ${s.source.replace(/\|/g, '\\|')} |`);
  return out;
}

/** The generated part of docs/capacity.md, between its markers. */
export function docsBlock(): string {
  const plans = TIERS.map((users) => planCapacity({ users, ...DEFAULTS }));
  const header = `| | ${plans.map((p) => `${shortUsers(p.input.users)} users`).join(' | ')} |`;
  const align = `|---|${plans.map(() => '---:').join('|')}|`;
  const table = (rowsOf: (p: CapacityPlan) => [string, string][]) => {
    const per = plans.map(rowsOf);
    return per[0]!.map(([label], r) => `| ${label.trim()} | ${per.map((rs) => rs[r]![1]).join(' | ')} |`);
  };
  const lines: string[] = [
    '### Parameters',
    '',
    ...sourceTable('measured', MEASURED, (k, v) => (k === 'redisMsPerRequest' ? `${v} ms` : group(v))),
    '',
    ...sourceTable('assumed (a flag of the command changes it)', ASSUMED, (k, v) => (k === 'cpuTarget' ? `${v * 100} %` : group(v))),
    '',
    ...sourceTable('monthly price, USD', PRICES, (_k, v) => usd(v)),
    '',
    `Derived: a primary takes ${group(writesPerPrimary(DEFAULTS.cpuTarget))} writes/s and a replica ${group(readsPerReplica(DEFAULTS.cpuTarget))} reads/s ` +
      `at the CPU target; an instance ${group(DEFAULTS.rpsPerInstance * DEFAULTS.cpuTarget)} req/s.`,
    '',
    '### The tiers',
    '',
    header,
    align,
    ...table((p) => rows(p).slice(1)),
    '',
    '### Monthly cost by component (USD)',
    '',
    header,
    align,
    ...table(costRows),
    '',
  ];
  const notes = plans.flatMap((p) => p.notes.map((n) => `- ${shortUsers(p.input.users)} users: ${n}`));
  if (notes.length > 0) lines.push('### What the model flags', '', ...notes, '');
  return lines.join('\n');
}
