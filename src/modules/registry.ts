// The table of feature modules. A process builds every module (their services are cheap and a
// module may use another's API), then serves the routes and runs the consumers of the modules it
// was given (`task-api serve --modules tasks`). Adding a module is one folder and one line here.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { EventBus } from '../events/bus.js';
import type { Database } from '../infra/db/database.js';
import { singleShard, type TaskShards } from '../infra/shards/set.js';
import type { ResponseCacheStore } from '../infra/cache/types.js';
import type { RefreshTokenStore } from '../infra/token-store/types.js';
import type { AuthRecorder } from '../observability/recorders.js';
import type { KeyRing } from './auth/contract.js';
import { authModule } from './auth/index.js';
import type { Apis, BuiltModule, ModuleName, Platform, StopConsumers } from './module.js';
import { notificationsModule } from './notifications/index.js';
import { tasksModule } from './tasks/index.js';
import { usersModule } from './users/index.js';

export type { ModuleName } from './module.js';

const MODULES = [authModule, usersModule, tasksModule, notificationsModule] as const;

export const MODULE_NAMES: readonly ModuleName[] = MODULES.map((m) => m.name);
export const ALL_MODULES: ReadonlySet<ModuleName> = new Set(MODULE_NAMES);

const isModule = (name: string): name is ModuleName => (MODULE_NAMES as readonly string[]).includes(name);

/** Parses a comma-separated list; throws naming the first unknown module. */
export function parseModules(list: string): ReadonlySet<ModuleName> {
  const names = list
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  if (names.length === 0) throw new Error(`--modules: name at least one of ${MODULE_NAMES.join(', ')}`);
  const unknown = names.find((n) => !isModule(n));
  if (unknown !== undefined) throw new Error(`--modules: unknown module "${unknown}" (known: ${MODULE_NAMES.join(', ')})`);
  return new Set(names.filter(isModule));
}

/** What the process opened, from which the platform the modules see is made. */
export interface PlatformSources {
  config: Config;
  database: Database;
  /** The shards of the tasks data; the one database when absent. */
  shards?: TaskShards | undefined;
  tokenStore: RefreshTokenStore;
  keys: KeyRing;
  cache?: ResponseCacheStore | undefined;
  authRecorder?: AuthRecorder | undefined;
  /** Told after a task write committed its event to the outbox (wakes the relay; optional). */
  eventsWritten?: () => void;
}

export function platformOf(sources: PlatformSources, log: FastifyBaseLogger): Platform {
  const { cache, eventsWritten } = sources;
  return {
    config: sources.config,
    database: sources.database,
    shards: sources.shards ?? singleShard(sources.database),
    log,
    tokenStore: sources.tokenStore,
    keys: sources.keys,
    authRecorder: sources.authRecorder,
    // After a write to a user's data: where the primary's WAL stands is recorded for the user
    // (read-your-writes on replicas), then their cached responses are retired. In that order: a
    // read that sees the new cache generation also sees the new position, so what it reads (and
    // caches) comes from a server that has the write.
    dataChanged: async (userId, on = sources.database) => {
      await on.wrote(userId);
      await cache?.invalidateUser(userId);
    },
    eventsWritten: () => eventsWritten?.(),
  };
}

export interface Modules {
  apis: Apis;
  /** Registers the routes of the selected modules. */
  routes(app: FastifyInstance, selected: ReadonlySet<ModuleName>): void;
  /** The consumer registrations of the selected modules, for the event runtime. */
  consumers(selected: ReadonlySet<ModuleName>): ((bus: EventBus) => StopConsumers | undefined)[];
}

type AnyModule = (typeof MODULES)[number];

/** Builds every module, each once, in the order their APIs are first needed. */
export function buildModules(platform: Platform): Modules {
  const built = new Map<ModuleName, BuiltModule<unknown>>();
  const building = new Set<ModuleName>();
  const apis = {} as Apis;
  const instance = (m: AnyModule): BuiltModule<unknown> => {
    const done = built.get(m.name);
    if (done) return done;
    if (building.has(m.name)) throw new Error(`module ${m.name} uses its own API while it builds (a circle between modules)`);
    building.add(m.name);
    const b = (m.build as (p: Platform, a: Apis) => BuiltModule<unknown>)(platform, apis);
    built.set(m.name, b);
    return b;
  };
  for (const m of MODULES) Object.defineProperty(apis, m.name, { enumerable: true, get: () => instance(m).api });
  for (const m of MODULES) instance(m);
  const selectedOf = (selected: ReadonlySet<ModuleName>) => MODULES.filter((m) => selected.has(m.name)).map((m) => instance(m));
  return {
    apis,
    routes(app, selected) {
      for (const m of selectedOf(selected)) m.routes?.(app);
    },
    consumers(selected) {
      return selectedOf(selected).flatMap((m) => (m.consumers ? [(bus: EventBus) => m.consumers!(bus)] : []));
    },
  };
}
