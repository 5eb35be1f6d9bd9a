#!/usr/bin/env -S node --max-semi-space-size=4 --max-old-space-size=160 --liftoff-only
// task-api <command>: serve | worker | migrate | create-admin <email> | keys | openapi | healthcheck | dead-letters | seed | cluster | shards | capacity
// Only the configuration is imported up front: when tracing is on, its SDK must start before the
// modules it instruments load, so every command imports what it needs once that is settled.
import { ConfigError, loadConfig, type Config } from './config.js';
import type { Database } from './infra/db/database.js';
import { errorMessage, StartupError } from './shared/errors.js';
import { safeStack } from './shared/redaction.js';
import { parseModules, type ModuleName } from './modules/registry.js';

const USAGE = `usage: task-api <command>
  serve [--modules LIST]    start the HTTP API (default); LIST picks modules from
                            auth,users,tasks,notifications (all by default)
  worker                    run the outbox relay and the event consumers, without HTTP
  migrate                   apply database migrations
  create-admin <email>      create or promote an admin; password from ADMIN_PASSWORD or stdin
  openapi                   print the OpenAPI document
  healthcheck [--metrics]   exit 0 when this container's server answers /health/live (or its
                            metrics port), else 1: the image's HEALTHCHECK
  seed --users N --tasks-per-user M [--seed S] [--prefix P] [--password PW] [--concurrency C]
                            fill the database with generated users and tasks (benchmarks, demos)
  keys rotate|list           add a signing key (published now, signing after JWT_KEY_PUBLISH_AHEAD_SECONDS;
                            the old one retires once its tokens expired), or show the stored keys
  dead-letters list|replay <consumer> [limit]
                            show, or move back to the consumer's queue, its dead-lettered events
  shards status|move|rebalance ...
                            the shards of the tasks data: buckets, rows and skew; move a bucket; rebalance
                            (task-api shards, for its options)
  cluster start|status|stop|restart|kill|start-one|roll|nginx-config|gateway-config ...
                            the production topology on this machine (task-api cluster, for its options)
  capacity --users N [--json] [--rps-per-instance R] [--requests-per-user-day D] [--peak-factor P] ...
                            instances, replicas, shards and monthly cost for N users (docs/capacity.md)`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

async function withDatabase<T>(config: Config, fn: (db: Database) => Promise<T>): Promise<T> {
  const { openDatabase } = await import('./infra/db/database.js');
  const database = await openDatabase({ ...config.database, dataDir: config.dataDir });
  try {
    return await fn(database);
  } finally {
    await database.close();
  }
}

/** Sends the spans still buffered; a collector that does not answer within 5 s does not hold the exit. */
async function flushTraces(stopTracing: (() => Promise<void>) | undefined, log: { warn(obj: object, msg: string): void }): Promise<void> {
  if (!stopTracing) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out after 5 s')), 5000);
  });
  try {
    await Promise.race([stopTracing(), timeout]);
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'trace flush failed');
  } finally {
    clearTimeout(timer);
  }
}

/** OTEL_EXPORTER_OTLP_ENDPOINT unset: the tracing SDK is never loaded. */
async function startTracingIfConfigured(config: Config): Promise<(() => Promise<void>) | undefined> {
  return config.tracing.endpoint ? (await import('./observability/tracing.js')).startTracing(config) : undefined;
}

interface Running {
  log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  shutdown(): Promise<void>;
}

/** Keeps a long-running command (serve, worker) up until SIGTERM or SIGINT, then drains and exits. */
function runUntilSignal(running: Running, stopTracing: (() => Promise<void>) | undefined): number {
  const stop = (signal: string) => {
    running.log.info({ signal }, 'shutdown requested');
    running
      .shutdown()
      .then(() => flushTraces(stopTracing, running.log))
      .then(
        () => process.exit(0),
        (err: unknown) => {
          running.log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return -1; // keep running
}

/** `serve [--modules a,b]`: the feature modules to run (all when the flag is absent). */
function modulesOf(args: string[]): ReadonlySet<ModuleName> | undefined {
  const rest = [...args];
  let modules: ReadonlySet<ModuleName> | undefined;
  while (rest.length > 0) {
    const arg = rest.shift()!;
    const inline = /^--modules=(.*)$/.exec(arg);
    if (inline) modules = parseModules(inline[1]!);
    else if (arg === '--modules') modules = parseModules(rest.shift() ?? '');
    else throw new Error(`serve: unknown argument "${arg}"`);
  }
  return modules;
}

async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...args] = argv;
  const config = loadConfig();
  switch (command) {
    case 'serve': {
      let modules: ReadonlySet<ModuleName> | undefined;
      try {
        modules = modulesOf(args); // a bad flag stops the process before anything starts
      } catch (err) {
        console.error(errorMessage(err));
        console.error(USAGE);
        return 2;
      }
      const stopTracing = await startTracingIfConfigured(config);
      const { serve } = await import('./server.js');
      const server = await serve(config, { modules });
      return runUntilSignal({ log: server.app.log, shutdown: () => server.shutdown() }, stopTracing);
    }
    case 'worker': {
      const stopTracing = await startTracingIfConfigured(config);
      const { work } = await import('./worker.js');
      return runUntilSignal(await work(config), stopTracing);
    }
    case 'migrate': {
      const { migrate } = await import('./infra/db/migrate.js');
      const applied = await withDatabase(config, (db) => migrate(db, { taskPartitions: config.database.taskPartitions }));
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      return 0;
    }
    case 'create-admin': {
      const email = args[0];
      if (!email) {
        console.error(USAGE);
        return 2;
      }
      const password = config.admin?.password ?? (await readStdin());
      if (password.length < 8 || password.length > 128) {
        console.error('create-admin: the password must be 8 to 128 characters');
        return 2;
      }
      const { migrate } = await import('./infra/db/migrate.js');
      const { ensureAdmin } = await import('./operations/admin.js');
      const outcome = await withDatabase(config, async (db) => {
        await migrate(db, { taskPartitions: config.database.taskPartitions });
        return ensureAdmin(db, { email, password }, { info: () => undefined });
      });
      console.log(`admin ${email}: ${outcome}`);
      return 0;
    }
    case 'keys': {
      const action = args[0];
      if ((action !== 'rotate' && action !== 'list') || args.length > 1) {
        console.error(USAGE);
        return 2;
      }
      const { migrate } = await import('./infra/db/migrate.js');
      const { keysCommand } = await import('./operations/keys.js');
      const lines = await withDatabase(config, async (db) => {
        if (config.database.migrateOnStart) await migrate(db, { taskPartitions: config.database.taskPartitions });
        return keysCommand(action, db, config);
      });
      for (const line of lines) console.log(line);
      return 0;
    }
    case 'dead-letters': {
      const [action, consumer, limitArg] = args;
      const limit = limitArg === undefined ? 100 : Number(limitArg);
      if ((action !== 'list' && action !== 'replay') || !consumer || !Number.isInteger(limit) || limit < 1) {
        console.error(USAGE);
        return 2;
      }
      if (config.events.amqpUrls.length === 0) {
        // The in-process bus keeps its dead letters in the database (event_retries).
        const { EventRetries } = await import('./events/retries.js');
        const letters = await withDatabase(config, async (db) => {
          const retries = new EventRetries(db.db);
          return action === 'list' ? retries.dead(consumer, limit) : retries.replay(consumer, limit);
        });
        for (const l of letters) {
          console.log(JSON.stringify({ messageId: l.eventId, type: l.type, reason: l.reason, deaths: l.attempts, error: l.lastError }));
        }
        console.log(`${action === 'list' ? 'dead letters' : 'replayed'}: ${letters.length}`);
        return 0;
      }
      const dl = await import('./events/dead-letters.js');
      const run = action === 'list' ? dl.listDeadLetters : dl.replayDeadLetters;
      const letters = await run(config.events.amqpUrls, config.events.exchange, consumer, limit);
      for (const l of letters) console.log(JSON.stringify({ messageId: l.messageId, type: l.type, reason: l.reason, deaths: l.deaths }));
      console.log(`${action === 'list' ? 'dead letters' : 'replayed'}: ${letters.length}`);
      return 0;
    }
    case 'cluster': {
      // The cluster's own settings (the edge's limits; what its instances inherit). `config`
      // above has already validated what the instances will read.
      const { loadClusterConfig } = await import('./cluster-config.js');
      const { clusterCommand } = await import('./operations/cluster/index.js');
      return clusterCommand(args, loadClusterConfig());
    }
    case 'shards': {
      const { shardsCommand } = await import('./operations/shards.js');
      return shardsCommand(args);
    }
    case 'capacity': {
      const { capacityCommand } = await import('./operations/capacity.js');
      return capacityCommand(args);
    }
    case 'seed': {
      const { seedCommand } = await import('./operations/seed.js');
      return seedCommand(args, config);
    }
    case 'healthcheck': {
      const { healthcheck } = await import('./operations/healthcheck.js');
      return healthcheck(config, args);
    }
    case 'openapi': {
      const { openApiDocument, serialiseDocument } = await import('./operations/openapi.js');
      process.stdout.write(serialiseDocument(await openApiDocument()));
      return 0;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    // A refusal to start says what to do: its message alone. Anything else with its stack, but
    // never a failed statement's parameters or a credential (shared/redaction.ts).
    if (err instanceof ConfigError || err instanceof StartupError) console.error(err.message);
    else console.error(err instanceof Error ? (safeStack(err) ?? errorMessage(err)) : errorMessage(err));
    process.exit(1);
  },
);
