// `task-api capacity --users N [...]`: the capacity model of docs/capacity.md for any number of
// users; `task-api capacity docs` rewrites that page's generated block and docs/capacity.svg.
import { readFile, writeFile } from 'node:fs/promises';
import { CapacityInputError, DEFAULTS, planCapacity, type CapacityInput } from './capacity/model.js';
import { planText } from './capacity/render.js';

export const CAPACITY_USAGE = `usage: task-api capacity --users N [options]
  --users N                     registered users to plan for (1 to 10,000,000,000)
  --rps-per-instance R          requests per second one instance serves at 100 % (default ${DEFAULTS.rpsPerInstance}: the mixed row through NGINX, docs/performance.md)
  --requests-per-user-day D     requests each user makes per day (default ${DEFAULTS.requestsPerUserDay})
  --peak-factor P               peak second over the day's average (default ${DEFAULTS.peakFactor})
  --cpu-target F                share of each server's capacity to plan for (default ${DEFAULTS.cpuTarget})
  --tasks-per-user T            stored tasks per user (default ${DEFAULTS.tasksPerUser})
  --json                        print the plan as one JSON object
       task-api capacity docs   rewrite docs/capacity.md's generated block and docs/capacity.svg (run from the repository root)
Model, parameters and their sources: docs/capacity.md`;

const NUMBER_FLAGS: Record<string, keyof CapacityInput> = {
  '--users': 'users',
  '--rps-per-instance': 'rpsPerInstance',
  '--requests-per-user-day': 'requestsPerUserDay',
  '--peak-factor': 'peakFactor',
  '--cpu-target': 'cpuTarget',
  '--tasks-per-user': 'tasksPerUser',
};

/** Parses `--flag value` and `--flag=value`; throws CapacityInputError naming the flag. */
export function parseCapacityArgs(args: string[]): { input: CapacityInput; json: boolean } {
  const raw = new Map<keyof CapacityInput, number>();
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--json') {
      json = true;
      continue;
    }
    const m = /^(--[a-z-]+)(?:=(.*))?$/s.exec(arg);
    const key = m ? NUMBER_FLAGS[m[1]!] : undefined;
    if (!m || !key) throw new CapacityInputError(`unknown argument "${arg}"`);
    const text = m[2] ?? args[++i];
    if (text === undefined || text.startsWith('--')) throw new CapacityInputError(`${m[1]} needs a value`);
    if (raw.has(key)) throw new CapacityInputError(`${m[1]} given twice`);
    if (!/^[0-9]+(\.[0-9]+)?([eE][+]?[0-9]+)?$/.test(text)) throw new CapacityInputError(`${m[1]} must be a number (got "${text}")`);
    raw.set(key, Number(text));
  }
  const users = raw.get('users');
  if (users === undefined) throw new CapacityInputError('--users is required');
  const input: CapacityInput = { ...DEFAULTS, users };
  for (const [k, v] of raw) input[k] = v;
  return { input, json };
}

async function writeDocs(out: (line: string) => void): Promise<number> {
  const { CAPACITY_MD, CAPACITY_SVG, capacitySvg, withGeneratedBlock } = await import('./capacity/docs.js');
  await writeFile(CAPACITY_MD, withGeneratedBlock(await readFile(CAPACITY_MD, 'utf8')));
  await writeFile(CAPACITY_SVG, capacitySvg());
  out(`wrote ${CAPACITY_MD} (generated block) and ${CAPACITY_SVG}`);
  return 0;
}

export async function capacityCommand(args: string[], out: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<number> {
  if (args[0] === 'docs' && args.length === 1) return writeDocs(out);
  try {
    const { input, json } = parseCapacityArgs(args);
    const plan = planCapacity(input);
    out(json ? JSON.stringify(plan) : planText(plan));
    return 0;
  } catch (err) {
    if (!(err instanceof CapacityInputError)) throw err;
    out(`capacity: ${err.message}`);
    out(CAPACITY_USAGE);
    return 2;
  }
}
