// Once per run, for the integration and system tiers:
// 1. finds PostgreSQL, Redis and RabbitMQ (TEST_DATABASE_URL, TEST_REDIS_URL, TEST_AMQP_URL, or
//    the default loopback ports) and starts a private instance of each one that does not answer,
//    so that `npm test` needs no service started by hand;
// 2. makes a template database with every migration applied. Each test file clones it
//    (CREATE DATABASE ... TEMPLATE), which takes milliseconds, and drops its clone afterwards.
// Vitest runs this once per project; the services are settled once for both (they stop when the
// last project's teardown runs), the template is per project.
import { createConnection } from 'node:net';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/infra/db/database.js';
import { migrate } from '../../src/infra/db/migrate.js';
import { ensureBuilt } from '../../tools/build.mjs';
import {
  canStartPostgres,
  canStartRabbitmq,
  canStartRedis,
  startPostgres,
  startRabbitmq,
  startRedis,
  type PrivateServer,
} from './private-services.js';
import { databaseUrl, DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

interface Service {
  name: string;
  /** The variable the workers read (test/setup/services.ts). */
  variable: 'TEST_DATABASE_URL' | 'TEST_REDIS_URL' | 'TEST_AMQP_URL';
  defaultUrl: string;
  canStart(): boolean;
  start(): Promise<PrivateServer>;
}

const SERVICES: Service[] = [
  { name: 'PostgreSQL', variable: 'TEST_DATABASE_URL', defaultUrl: DEFAULT_DATABASE_URL, canStart: canStartPostgres, start: startPostgres },
  { name: 'Redis', variable: 'TEST_REDIS_URL', defaultUrl: DEFAULT_REDIS_URL, canStart: canStartRedis, start: startRedis },
  { name: 'RabbitMQ', variable: 'TEST_AMQP_URL', defaultUrl: DEFAULT_AMQP_URL, canStart: canStartRabbitmq, start: startRabbitmq },
];

/** Does something accept TCP connections at the URL's host and port? */
const answers = (url: string) =>
  new Promise<boolean>((resolve) => {
    const u = new URL(url);
    const socket = createConnection({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });

async function settle(service: Service): Promise<PrivateServer | undefined> {
  const given = process.env[service.variable];
  if (given !== undefined) {
    if (await answers(given)) return undefined;
    throw new Error(`${service.variable}=${given}: nothing answers there`);
  }
  // TEST_PRIVATE_SERVICES=1: private instances even where the machine's services answer.
  if (process.env.TEST_PRIVATE_SERVICES !== '1' && (await answers(service.defaultUrl))) {
    process.env[service.variable] = service.defaultUrl;
    return undefined;
  }
  if (!service.canStart()) {
    throw new Error(`${service.name} does not answer at ${service.defaultUrl} and is not installed here to start a private one: install it, start it, or set ${service.variable}`);
  }
  const server = await service.start();
  process.env[service.variable] = server.url;
  const why = process.env.TEST_PRIVATE_SERVICES === '1' ? 'TEST_PRIVATE_SERVICES=1' : `nothing answered at ${service.defaultUrl}`;
  process.stdout.write(`${service.name}: ${why}; started a private instance at ${server.url}\n`);
  return server;
}

interface Shared {
  ready: Promise<PrivateServer[]>;
  users: number;
}
const SHARED = Symbol.for('task-api.test.services');
const registry = globalThis as { [SHARED]?: Shared };

async function settleAll(): Promise<PrivateServer[]> {
  const started: PrivateServer[] = [];
  try {
    // One after another: a private RabbitMQ takes seconds, and the others are quick.
    for (const service of SERVICES) {
      const server = await settle(service);
      if (server) started.push(server);
    }
  } catch (err) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw err;
  }
  return started;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  ensureBuilt(new URL('../..', import.meta.url).pathname);
  const shared = (registry[SHARED] ??= { ready: settleAll(), users: 0 });
  shared.users++;
  const started = await shared.ready;
  // services.ts read the environment before it was settled: take the URL from it now.
  const server = process.env.TEST_DATABASE_URL!;

  const runPrefix = `task_api_test_${process.pid}_${project.name.replace(/\W/g, '_')}`;
  const admin = postgres(server, { max: 1, onnotice: () => undefined });
  const template = `${runPrefix}_tmpl`;
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template}`);
  await admin.unsafe(`CREATE DATABASE ${template}`);
  const db = await openDatabase({ url: databaseUrl(template, server), poolMax: 1, prepare: true, dataDir: ':memory:' });
  await migrate(db, { taskPartitions: 4 });
  await db.close();
  project.provide('templateDatabase', template);

  return async () => {
    const leftovers = await admin<{ datname: string }[]>`select datname from pg_database where datname like ${`${runPrefix}%`}`;
    for (const { datname } of leftovers) await admin.unsafe(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    await admin.end();
    if (--shared.users === 0) {
      delete registry[SHARED];
      await Promise.allSettled(started.map((s) => s.stop()));
    }
  };
}
