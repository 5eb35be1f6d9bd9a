// The tasks module: task CRUD and lists (filters, sorts, keyset cursors, full text), the admin's
// list; every write appends its event to the outbox in the same transaction.
import { defineModule } from '../module.js';
import { TasksRepository } from './repository.js';
import { tasksRoutes } from './routes.js';
import { TasksService } from './service.js';

export const tasksModule = defineModule<'tasks', 'database' | 'dataChanged' | 'eventsWritten', 'users'>({
  name: 'tasks',
  build({ database, dataChanged, eventsWritten }, apis) {
    const changed = (userId: string) => {
      eventsWritten();
      return dataChanged(userId);
    };
    const tasks = new TasksService(new TasksRepository(database.db), changed, (ids) => apis.users.ownersOf(ids));
    return { api: {}, routes: (app) => tasksRoutes(app, { tasks }) };
  },
});
