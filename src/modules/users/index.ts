// The users module: profiles and admin user management; the accounts auth signs in against. The
// other modules learn of accounts only from its account events.
import { defineModule } from '../module.js';
import { UsersRepository } from './repository.js';
import { usersRoutes } from './routes.js';
import { UsersService } from './service.js';

export const usersModule = defineModule<'users', 'database' | 'dataChanged' | 'eventsWritten', 'auth'>({
  name: 'users',
  build({ database, dataChanged, eventsWritten }, apis) {
    // Every change of an account appends its event (user.created/updated/deleted) to the outbox.
    const repo = new UsersRepository(database.db, eventsWritten);
    // Read on use: auth builds on the users API, so it is not there yet while users builds.
    const users = new UsersService(repo, (userId) => apis.auth.revokeSessions(userId), dataChanged);
    return {
      api: { accounts: repo },
      routes: (app) => usersRoutes(app, { users }),
    };
  },
});
