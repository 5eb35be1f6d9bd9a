// The tasks module: task CRUD and lists (filters, sorts, keyset cursors, full text), the admin's
// list; every write appends its event to the outbox in the same transaction.
import { defineModule } from '../module.js';
import { TasksRepository } from './repository.js';
import { tasksRoutes } from './routes.js';
import { TasksService } from './service.js';

export const tasksModule = defineModule<'tasks', 'database' | 'config' | 'dataChanged' | 'eventsWritten', 'users'>({
  name: 'tasks',
  build({ database, config, dataChanged, eventsWritten }, apis) {
    const changed = (userId: string) => {
      eventsWritten();
      return dataChanged(userId);
    };
    const tasks = new TasksService(new TasksRepository(database.db, database), changed, (ids) => apis.users.ownersOf(ids), config.limits.tasksPerUser);
    return { api: {}, routes: (app) => tasksRoutes(app, { tasks }) };
  },
});
