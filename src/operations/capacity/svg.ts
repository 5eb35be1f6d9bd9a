// docs/capacity.svg: servers and monthly cost by users, both axes on log scales, drawn from the
// same planCapacity() as the doc's table and the command. Deterministic text (fixed decimals).
import { DEFAULTS, TIERS, planCapacity, type CapacityPlan } from './model.js';
import { group, shortUsers } from './render.js';

const W = 960;
const H = 420;
const PANEL = { top: 56, bottom: 350, width: 380 };
const LEFT_X = [70, 70 + PANEL.width] as const;
const RIGHT_X = [560, 560 + PANEL.width - 20] as const;
const X_DECADES = [4, 8] as const; // 10k .. 100M users

interface Series {
  label: string;
  color: string;
  value: (p: CapacityPlan) => number;
}

const SERVERS: Series[] = [
  { label: 'API instances', color: '#1f77b4', value: (p) => p.apiInstances },
  { label: 'PostgreSQL servers', color: '#d62728', value: (p) => p.postgres.servers },
  { label: 'PgBouncer', color: '#9467bd', value: (p) => p.pgbouncer.count },
  { label: 'Redis nodes', color: '#2ca02c', value: (p) => p.redis.nodes },
  { label: 'RabbitMQ nodes', color: '#ff7f0e', value: (p) => p.rabbitmq.nodes },
];

const f = (n: number) => n.toFixed(1);

function scale(decades: readonly [number, number], range: readonly [number, number], invert = false) {
  return (v: number) => {
    const t = (Math.log10(v) - decades[0]) / (decades[1] - decades[0]);
    return invert ? range[1] - t * (range[1] - range[0]) : range[0] + t * (range[1] - range[0]);
  };
}

/** The samples: 24 per decade of users, plus the tiers themselves. */
function samples(): CapacityPlan[] {
  const users = new Set<number>();
  for (let k = 0; k <= (X_DECADES[1] - X_DECADES[0]) * 24; k++) users.add(Math.round(10 ** (X_DECADES[0] + k / 24)));
  for (const t of TIERS) users.add(t);
  return [...users].sort((a, b) => a - b).map((u) => planCapacity({ users: u, ...DEFAULTS }));
}

/** A step line: each change of value is drawn where the sample crosses it. */
function stepPath(plans: CapacityPlan[], value: (p: CapacityPlan) => number, x: (u: number) => number, y: (v: number) => number): string {
  const pts: string[] = [];
  plans.forEach((p, i) => {
    const px = x(p.input.users);
    if (i > 0) pts.push(`${f(px)},${f(y(value(plans[i - 1]!)))}`);
    pts.push(`${f(px)},${f(y(value(p)))}`);
  });
  return pts.join(' ');
}

function axes(x0: number, x1: number, yDecades: readonly [number, number], yLabel: (v: number) => string, title: string): string[] {
  const x = scale(X_DECADES, [x0, x1]);
  const y = scale(yDecades, [PANEL.top, PANEL.bottom], true);
  const out = [
    `<text x="${f((x0 + x1) / 2)}" y="${PANEL.top - 22}" text-anchor="middle" font-weight="bold">${title}</text>`,
    `<rect x="${x0}" y="${PANEL.top}" width="${x1 - x0}" height="${PANEL.bottom - PANEL.top}" fill="none" stroke="#888"/>`,
  ];
  for (let d = X_DECADES[0]; d <= X_DECADES[1]; d++) {
    const px = f(x(10 ** d));
    out.push(`<line x1="${px}" y1="${PANEL.top}" x2="${px}" y2="${PANEL.bottom}" stroke="#eee"/>`);
    out.push(`<text x="${px}" y="${PANEL.bottom + 16}" text-anchor="middle">${shortUsers(10 ** d)}</text>`);
  }
  for (let d = yDecades[0]; d <= yDecades[1]; d++) {
    const py = f(y(10 ** d));
    out.push(`<line x1="${x0}" y1="${py}" x2="${x1}" y2="${py}" stroke="#eee"/>`);
    out.push(`<text x="${x0 - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${yLabel(10 ** d)}</text>`);
  }
  for (const t of TIERS) {
    const px = f(x(t));
    out.push(`<line x1="${px}" y1="${PANEL.top}" x2="${px}" y2="${PANEL.bottom}" stroke="#999" stroke-dasharray="4 3"/>`);
  }
  out.push(`<text x="${f((x0 + x1) / 2)}" y="${PANEL.bottom + 34}" text-anchor="middle">users (log scale); dashed: the seed's tiers</text>`);
  return out;
}

export function capacitySvg(): string {
  const plans = samples();
  const tiers = TIERS.map((users) => plans.find((p) => p.input.users === users)!);
  const body: string[] = [];

  // Left: servers of each kind.
  const countDecades = [0, 3] as const;
  body.push(...axes(LEFT_X[0], LEFT_X[1], countDecades, (v) => group(v), 'Servers by users'));
  const lx = scale(X_DECADES, LEFT_X);
  const ly = scale(countDecades, [PANEL.top, PANEL.bottom], true);
  SERVERS.forEach((s, i) => {
    body.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${stepPath(plans, s.value, lx, ly)}"/>`);
    const legendY = PANEL.top + 14 + i * 16;
    body.push(`<line x1="${LEFT_X[0] + 10}" y1="${legendY}" x2="${LEFT_X[0] + 28}" y2="${legendY}" stroke="${s.color}" stroke-width="2"/>`);
    body.push(`<text x="${LEFT_X[0] + 32}" y="${legendY}" dominant-baseline="middle">${s.label}</text>`);
  });

  // Right: monthly cost.
  const costDecades = [2, 5] as const;
  body.push(...axes(RIGHT_X[0], RIGHT_X[1], costDecades, (v) => `$${group(v)}`, 'Monthly cost (USD, the seed\'s AWS prices)'));
  const rx = scale(X_DECADES, RIGHT_X);
  const ry = scale(costDecades, [PANEL.top, PANEL.bottom], true);
  body.push(`<polyline fill="none" stroke="#333" stroke-width="2" points="${stepPath(plans, (p) => p.cost.total, rx, ry)}"/>`);
  for (const p of tiers) {
    const px = f(rx(p.input.users));
    const py = f(ry(p.cost.total));
    body.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="#333"/>`);
    body.push(`<text x="${px}" y="${f(ry(p.cost.total) - 10)}" text-anchor="end">$${group(p.cost.total)}</text>`);
  }

  const d = DEFAULTS;
  const caption =
    `${group(d.requestsPerUserDay)} requests per user per day, peak factor ${d.peakFactor}, ${group(d.rpsPerInstance)} req/s per instance ` +
    `at ${Math.round(d.cpuTarget * 100)} % CPU, ${group(d.tasksPerUser)} tasks per user. Generated by npm run capacity:docs (src/operations/capacity).`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    ...body,
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle" fill="#555">${caption}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
