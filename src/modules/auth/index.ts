// The auth module: register, login, refresh rotation with reuse detection, logout, JWKS.
import { defineModule } from '../module.js';
import { authRoutes, jwksRoute } from './routes.js';
import { AuthService } from './service.js';
import { AccessTokens } from './tokens.js';

export const authModule = defineModule<'auth', 'config' | 'tokenStore' | 'keys' | 'log' | 'authRecorder', 'users'>({
  name: 'auth',
  build({ config, tokenStore, keys, log, authRecorder }, apis) {
    const access = new AccessTokens(keys, {
      issuer: config.jwt.issuer,
      audience: config.jwt.audience,
      accessTtlSeconds: config.jwt.accessTtlSeconds,
    });
    const auth = new AuthService(apis.users.accounts, tokenStore, access, config.jwt.refreshTtlSeconds, log, authRecorder);
    return {
      api: { tokens: access, revokeSessions: (userId: string) => auth.revokeAll(userId) },
      routes(app) {
        jwksRoute(app, { keys });
        authRoutes(app, { auth });
      },
    };
  },
});
