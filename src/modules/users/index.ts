// The users module: profiles and admin user management; the accounts auth signs in against.
import { defineModule } from '../module.js';
import { UsersRepository } from './repository.js';
import { usersRoutes } from './routes.js';
import { UsersService } from './service.js';

export const usersModule = defineModule<'users', 'database' | 'dataChanged', 'auth'>({
  name: 'users',
  build({ database, dataChanged }, apis) {
    const repo = new UsersRepository(database.db);
    // Read on use: auth builds on the users API, so it is not there yet while users builds.
    const users = new UsersService(repo, (userId) => apis.auth.revokeSessions(userId), dataChanged);
    return {
      api: {
        accounts: repo,
        ownersOf: (ids) => repo.owners(ids),
        emailOf: async (userId) => (await repo.findById(userId))?.email,
        accountExists: async (userId) => (await repo.findById(userId)) !== undefined,
      },
      routes: (app) => usersRoutes(app, { users }),
    };
  },
});
