// What other modules and the HTTP platform may use of the auth module.
import type { AccessTokenVerifier } from '../../http/auth.js';

export type { KeyRing } from './keys.js';

export interface AuthApi {
  /** Verifies access tokens locally (the auth hook of every process that serves routes). */
  tokens: AccessTokenVerifier;
  /** Ends every session of a user: password change, account deletion. */
  revokeSessions: (userId: string) => Promise<void>;
}
