// `task-api shards status|move|rebalance`: the bucket map and the shards of the tasks data, from
// DATABASE_URL and TASK_SHARDS (with each SHARD_<NAME>_URL), or from a cluster's --dir.
import { loadConfig, loadConfigWithDatabases } from '../config.js';
import { shardsStatus, bucketRows, planRebalance } from '../infra/shards/balance.js';
import { BUCKETS } from '../infra/shards/buckets.js';
import { openFleet, type ShardFleet } from '../infra/shards/fleet.js';
import { loadMap } from '../infra/shards/map.js';
import { moveBucket } from '../infra/shards/move.js';

export const SHARDS_USAGE = `usage: task-api shards <command> [--dir D]
  status [--json]                   buckets, rows and skew per shard
  move --bucket B --to S            move one bucket to shard S while the API serves it
  rebalance [--max-skew F] [--max-moves N] [--dry-run]
                                    move buckets until the rows per shard are within the skew (default 0.1)
  move and rebalance also take --grace-ms (how long the source keeps a moved bucket's rows, 2000)
  and --outbox-wait-ms (how long the fence waits for the source to publish the bucket's events, 2000)
  --dir D                           the shards of the cluster started under D (task-api cluster start --shards N);
                                    otherwise DATABASE_URL, TASK_SHARDS and SHARD_<NAME>_URL`;

interface Flags {
  dir?: string;
  json: boolean;
  bucket?: number;
  to?: string;
  maxSkew: number;
  maxMoves: number;
  dryRun: boolean;
  graceMs?: number;
  outboxWaitMs?: number;
}

function parseFlags(args: string[]): Flags {
  const flags: Flags = { json: false, maxSkew: 0.1, maxMoves: 64, dryRun: false };
  const rest = [...args];
  const value = (name: string) => {
    const v = rest.shift();
    if (v === undefined || v.startsWith('--')) throw new Error(`${name}: needs a value`);
    return v;
  };
  const number = (name: string, v: string, min: number) => {
    const n = Number(v);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || n < min) throw new Error(`${name}: a number of at least ${min} (got "${v}")`);
    return n;
  };
  const integer = (name: string, v: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`${name}: a whole number from ${min} to ${max} (got "${v}")`);
    return Number(v);
  };
  while (rest.length > 0) {
    const arg = rest.shift()!;
    switch (arg) {
      case '--dir':
        flags.dir = value(arg);
        break;
      case '--json':
        flags.json = true;
        break;
      case '--bucket':
        flags.bucket = integer(arg, value(arg), 0, BUCKETS - 1);
        break;
      case '--to':
        flags.to = value(arg);
        break;
      case '--max-skew':
        flags.maxSkew = number(arg, value(arg), 0);
        break;
      case '--max-moves':
        flags.maxMoves = integer(arg, value(arg), 1, BUCKETS);
        break;
      case '--grace-ms':
        flags.graceMs = integer(arg, value(arg), 0);
        break;
      case '--outbox-wait-ms':
        flags.outboxWaitMs = integer(arg, value(arg), 0);
        break;
      case '--dry-run':
        flags.dryRun = true;
        break;
      default:
        throw new Error(`unknown argument "${arg}"`);
    }
  }
  return flags;
}

async function fleetOf(flags: Flags): Promise<ShardFleet> {
  if (!flags.dir) return openFleet(loadConfig());
  // The cluster's databases alone: none of the caller's own database or shard settings survive.
  const { shardEnvOf } = await import('./cluster/shards.js');
  return openFleet(loadConfigWithDatabases(shardEnvOf(flags.dir)));
}

export async function shardsCommand(args: string[], out: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<number> {
  const [action, ...rest] = args;
  let flags: Flags;
  try {
    flags = parseFlags(rest);
    if (action === 'move' && (flags.bucket === undefined || flags.to === undefined)) throw new Error('move: --bucket B and --to S are required');
    if (action !== 'status' && action !== 'move' && action !== 'rebalance') throw new Error(action ? `unknown command "${action}"` : 'name a command');
  } catch (err) {
    out(`shards: ${(err as Error).message}`);
    out(SHARDS_USAGE);
    return 2;
  }
  const fleet = await fleetOf(flags);
  try {
    if (action === 'status') {
      const status = await shardsStatus(fleet);
      if (flags.json) out(JSON.stringify({ shards: status.shards, skew: status.skew, version: status.version, moving: status.moving }));
      else {
        for (const s of status.shards) out(`${s.name.padEnd(12)} buckets ${String(s.buckets).padStart(5)}   rows ${String(s.rows).padStart(10)}`);
        out(`skew ${status.skew} (the fullest shard's rows above the mean, as a fraction of it); map v${status.version}${status.moving.length ? `; moving: ${status.moving.join(', ')}` : ''}`);
      }
      return 0;
    }
    if (action === 'move') {
      const report = await moveBucket(fleet, { bucket: flags.bucket!, to: flags.to!, graceMs: flags.graceMs, outboxWaitMs: flags.outboxWaitMs, say: out });
      out(JSON.stringify(report));
      return 0;
    }
    const map = await loadMap(fleet.directory.raw);
    if (!map) throw new Error('the bucket map is not initialised: start the API once with TASK_SHARDS set');
    const plan = planRebalance(await bucketRows(fleet, map), flags.maxSkew, flags.maxMoves);
    out(`${plan.length} move(s) planned${flags.dryRun ? ' (dry run)' : ''}`);
    for (const m of plan) {
      out(`bucket ${m.bucket}: ${m.from} -> ${m.to} (${m.rows} rows)`);
      if (!flags.dryRun) await moveBucket(fleet, { bucket: m.bucket, to: m.to, graceMs: flags.graceMs, outboxWaitMs: flags.outboxWaitMs, say: out });
    }
    const after = await shardsStatus(fleet);
    out(JSON.stringify({ shards: after.shards, skew: after.skew }));
    return 0;
  } finally {
    await fleet.close();
  }
}
