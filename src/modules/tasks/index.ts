// The tasks module: task CRUD and lists (filters, sorts, keyset cursors, full text), the admin's
// list; every write appends its event to the outbox in the same transaction. It learns of
// accounts only from the account events (accounts.ts): the owners it shows, the accounts deleted.
import { defineModule } from '../module.js';
import { ACCOUNTS_CONSUMER, createAccountsHandler } from './accounts.js';
import { tasksRoutes } from './routes.js';
import { ShardRepositories, TasksService, type DataChanged } from './service.js';

export const tasksModule = defineModule<'tasks', 'shards' | 'config' | 'dataChanged' | 'eventsWritten'>({
  name: 'tasks',
  build({ shards, config, dataChanged, eventsWritten }) {
    const repos = new ShardRepositories(shards);
    const written: DataChanged = (userId, shard) => dataChanged(userId, shard.database);
    const changed: DataChanged = (userId, shard) => {
      eventsWritten();
      return written(userId, shard);
    };
    const tasks = new TasksService(repos, changed, config.limits.tasksPerUser, config.shards.scatterTimeoutMs);
    return {
      api: {},
      routes: (app) => tasksRoutes(app, { tasks }),
      consumers(bus) {
        bus.subscribe(ACCOUNTS_CONSUMER, createAccountsHandler({ repos, dataChanged: written }), { types: ['user.*'] });
        return undefined;
      },
    };
  },
});
