// How a feature module enters a process. Each module folder has one entry (its index.ts) that
// exports a FeatureModule: given the platform pieces it declares and the other modules' public
// APIs it uses, it builds its repository and service and says what it adds to the process:
// routes for the HTTP app, consumers for the event bus, and an API for other modules. The table
// of modules is src/modules/registry.ts; a deployable is a selection from it.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { EventBus } from '../events/bus.js';
import type { Database } from '../infra/db/database.js';
import type { TaskShards } from '../infra/shards/set.js';
import type { RefreshTokenStore } from '../infra/token-store/types.js';
import type { AuthRecorder } from '../observability/recorders.js';
import type { AuthApi, KeyRing } from './auth/contract.js';
import type { NotificationsApi } from './notifications/contract.js';
import type { TasksApi } from './tasks/contract.js';
import type { UsersApi } from './users/contract.js';

/** Everything a module may ask of the process it runs in. Each module picks what it needs. */
export interface Platform {
  config: Config;
  database: Database;
  /** The shards of the tasks data (one, `database`, unless TASK_SHARDS is set). */
  shards: TaskShards;
  log: FastifyBaseLogger;
  tokenStore: RefreshTokenStore;
  keys: KeyRing;
  authRecorder: AuthRecorder | undefined;
  /**
   * After a write to a user's data committed (on `database`, or on the given one: a shard):
   * record it for read-your-writes there, retire their cached responses.
   */
  dataChanged(userId: string, on?: Database): Promise<void>;
  /** After a write committed an event to the outbox: wake the relay. */
  eventsWritten(): void;
}

/** The public API of every module, by name: what modules may use of each other. */
export interface Apis {
  auth: AuthApi;
  users: UsersApi;
  tasks: TasksApi;
  notifications: NotificationsApi;
}

export type ModuleName = keyof Apis;

/** What runs what a module's consumers started (timers, workers) down on shutdown. */
export type StopConsumers = () => Promise<void>;

/** A module built for one process. */
export interface BuiltModule<Api> {
  api: Api;
  /** Registers the module's HTTP routes (only in processes that serve the module). */
  routes?(app: FastifyInstance): void;
  /** Subscribes the module's event consumers (only in processes that consume for it). */
  consumers?(bus: EventBus): StopConsumers | undefined;
}

export interface FeatureModule<N extends ModuleName, Needs extends keyof Platform, Uses extends Exclude<ModuleName, N> = never> {
  readonly name: N;
  /**
   * `apis` resolves on use: read another module's API inside a function that runs later (a
   * request, an event), or at build time only when that module does not read this one's then.
   */
  build(platform: Pick<Platform, Needs>, apis: Pick<Apis, Uses>): BuiltModule<Apis[N]>;
}

/** Declares a module, checking that it needs no more than it says. */
export const defineModule = <N extends ModuleName, Needs extends keyof Platform, Uses extends Exclude<ModuleName, N> = never>(
  m: FeatureModule<N, Needs, Uses>,
): FeatureModule<N, Needs, Uses> => m;
