// Child process: the DB ceiling of one endpoint. Replays the captured statements with a plain
// postgres.js client (same pool size as the API), `concurrency` operations in flight, for a
// fixed time, and prints one JSON line: {ops, seconds, rps, p50, p99, errors}.
// usage: node build/bench/db-ceiling-worker.js <spec.json>
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres, { type ParameterOrJSON } from 'postgres';
import { errorMessage } from '../src/shared/errors.js';
import { ROOT } from './procs.js';
import { applyDriverTypes, bind, type Binding, type Captured } from './sql-capture.js';
import { percentile } from './stats.js';

export interface DbCeilingSpec {
  databaseUrl: string;
  poolMax: number;
  concurrency: number;
  durationMs: number;
  templates: Record<string, Captured>;
  /** Replayed in order, round and round: which template, with which values. */
  pool: { t: string; b: Binding }[];
}

export interface DbCeilingResult {
  ops: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  firstError?: string;
}

const MAX_SAMPLES = 5_000_000;

async function main(file: string): Promise<DbCeilingResult> {
  const spec = JSON.parse(readFileSync(file, 'utf8')) as DbCeilingSpec;
  const { uuidv7 } = (await import(pathToFileURL(path.join(ROOT, 'dist/shared/ids.js')).href)) as { uuidv7: () => string };
  const sql = postgres(spec.databaseUrl, { max: spec.poolMax, prepare: true, onnotice: () => undefined });
  await applyDriverTypes(sql);
  // Every connection open and every statement prepared before the clock starts.
  await Promise.all(Array.from({ length: spec.poolMax }, () => sql`select 1`));

  // Ids this run wrote, so that its outbox events can be retired afterwards (not timed).
  const written: string[] = [];
  const run = async (entry: { t: string; b: Binding }) => {
    const c = spec.templates[entry.t]!;
    const binding: Binding = { ...entry.b };
    for (const role of c.fresh) {
      binding[role] = uuidv7();
      if (written.length < MAX_SAMPLES) written.push(binding[role]);
    }
    if (c.transaction) {
      await sql.begin(async (tx) => {
        for (const st of c.statements) await tx.unsafe(st.text, bind(st, c.values, binding) as ParameterOrJSON<never>[], { prepare: true });
      });
    } else {
      for (const st of c.statements) await sql.unsafe(st.text, bind(st, c.values, binding) as ParameterOrJSON<never>[], { prepare: true });
    }
  };

  // Warm-up: a few operations per connection, not measured.
  let next = 0;
  const take = () => spec.pool[next++ % spec.pool.length]!;
  await Promise.all(Array.from({ length: spec.poolMax * 2 }, () => run(take())));

  const samples = new Float64Array(MAX_SAMPLES);
  let n = 0;
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const end = started + spec.durationMs;
  const loop = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await run(take());
        ops++;
        if (n < MAX_SAMPLES) samples[n++] = performance.now() - t0;
      } catch (err) {
        errors++;
        firstError ??= errorMessage(err);
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, loop));
  const seconds = (performance.now() - started) / 1000;
  // The API's outbox relay must not publish the ceiling's events later, during an API row.
  for (let i = 0; i < written.length; i += 10_000) {
    await sql`update outbox set published_at = now() where id = any(${written.slice(i, i + 10_000)}::uuid[]) and published_at is null`;
  }
  await sql.end({ timeout: 5 });
  const lat = samples.subarray(0, n);
  return { ops, seconds, rps: ops / seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), errors, ...(firstError ? { firstError } : {}) };
}

const file = process.argv[2];
if (!file) {
  console.error('usage: db-ceiling-worker.js <spec.json>');
  process.exit(2);
}
main(file).then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
