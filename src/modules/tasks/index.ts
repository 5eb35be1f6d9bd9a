// The tasks module: task CRUD and lists (filters, sorts, keyset cursors, full text), the admin's
// list; every write appends its event to the outbox in the same transaction. It learns of
// accounts only from the account events (accounts.ts): the owners it shows, the accounts deleted.
import { defineModule } from '../module.js';
import { ACCOUNTS_CONSUMER, createAccountsHandler } from './accounts.js';
import { TasksRepository } from './repository.js';
import { tasksRoutes } from './routes.js';
import { TasksService } from './service.js';

export const tasksModule = defineModule<'tasks', 'database' | 'config' | 'dataChanged' | 'eventsWritten'>({
  name: 'tasks',
  build({ database, config, dataChanged, eventsWritten }) {
    const changed = (userId: string) => {
      eventsWritten();
      return dataChanged(userId);
    };
    const tasks = new TasksService(new TasksRepository(database.db, database), changed, config.limits.tasksPerUser);
    return {
      api: {},
      routes: (app) => tasksRoutes(app, { tasks }),
      consumers(bus) {
        bus.subscribe(ACCOUNTS_CONSUMER, createAccountsHandler({ db: database.db, dataChanged }), { types: ['user.*'] });
        return undefined;
      },
    };
  },
});
