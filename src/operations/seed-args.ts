// `task-api seed` arguments: the usage text and the parser (the generator is seed.ts).
export const SEED_USAGE = `usage: task-api seed --users N --tasks-per-user M [options]
  --users N            users to generate (>= 1): emails <prefix>-1@example.com .. <prefix>-N@example.com
  --tasks-per-user M   tasks for each user (>= 0)
  --seed S             integer seed of the generator (default 1); same arguments, same rows
  --prefix P           email and id prefix, [a-z0-9-]+ (default "seed"); another prefix adds other users
  --password PW        password of every seeded user, 8..128 characters (default "seed-password-1")
  --concurrency C      parallel connections (default 2; 1 on the embedded PGlite)
Additive: existing users are kept and users that already have tasks get none, so running the
same command twice adds nothing. Bulk load: no outbox events are written for seeded tasks.
Prints progress on stderr and one JSON line on stdout: {"users","tasks","seconds","tasksPerSecond"}
(the users and tasks inserted by this run).`;

export interface SeedOptions {
  users: number;
  tasksPerUser: number;
  seed: number;
  prefix: string;
  password: string;
  concurrency: number;
}

export class SeedUsageError extends Error {}

const FLAGS = ['users', 'tasks-per-user', 'seed', 'prefix', 'password', 'concurrency'] as const;
type Flag = (typeof FLAGS)[number];

/** Parses `--flag value` and `--flag=value`; throws SeedUsageError naming the bad flag. */
export function parseSeedArgs(args: string[]): SeedOptions {
  const raw = new Map<Flag, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new SeedUsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1]!;
    if (!(FLAGS as readonly string[]).includes(name)) throw new SeedUsageError(`unknown flag --${name}`);
    let value = m[2];
    if (value === undefined) {
      value = args[++i];
      if (value === undefined) throw new SeedUsageError(`--${name} needs a value`);
    }
    if (raw.has(name as Flag)) throw new SeedUsageError(`--${name} given twice`);
    raw.set(name as Flag, value);
  }
  const int = (flag: Flag, min: number, max: number, dflt?: number): number => {
    const v = raw.get(flag);
    if (v === undefined) {
      if (dflt === undefined) throw new SeedUsageError(`--${flag} is required`);
      return dflt;
    }
    const n = /^-?[0-9]+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new SeedUsageError(`--${flag} must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
    }
    return n;
  };
  const users = int('users', 1, 100_000_000);
  const tasksPerUser = int('tasks-per-user', 0, 1_000_000);
  if (users * tasksPerUser > 2_000_000_000) throw new SeedUsageError('--users x --tasks-per-user must stay under 2,000,000,000 tasks');
  const seed = int('seed', -2_147_483_648, 2_147_483_647, 1);
  const concurrency = int('concurrency', 1, 64, 2);
  const prefix = raw.get('prefix') ?? 'seed';
  if (!/^[a-z0-9-]{1,40}$/.test(prefix)) throw new SeedUsageError(`--prefix must match [a-z0-9-]+ (1 to 40 characters), got ${JSON.stringify(prefix)}`);
  const password = raw.get('password') ?? 'seed-password-1';
  if (password.length < 8 || password.length > 128) throw new SeedUsageError('--password must be 8 to 128 characters');
  return { users, tasksPerUser, seed, prefix, password, concurrency };
}
