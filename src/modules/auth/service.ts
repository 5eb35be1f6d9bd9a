// Register, login, refresh-token rotation with reuse detection, logout.
import type { FastifyBaseLogger } from 'fastify';
import type { RefreshTokenStore } from '../../infra/token-store/types.js';
import { isUniqueViolation } from '../../shared/db-errors.js';
import { AppError, conflict, serviceUnavailable, unauthorized } from '../../shared/errors.js';
import { uuidv7 } from '../../shared/ids.js';
import type { Accounts, User } from '../users/contract.js';
import { burnPasswordCheck, hashPassword, needsRehash, verifyPassword } from '../../infra/passwords.js';
import { noAuthRecorder, type AuthRecorder } from '../../observability/recorders.js';
import { hashRefreshToken, newRefreshToken, type AccessTokens } from './tokens.js';
import { normaliseEmail } from '../../shared/email.js';

export interface Credentials {
  email: string;
  password: string;
}

export interface Session {
  user: User;
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

const invalidCredentials = () => unauthorized('Email or password is incorrect', 'invalid-credentials');
const invalidRefresh = () => unauthorized('The refresh token is invalid, expired or revoked', 'invalid-refresh-token');

export class AuthService {
  constructor(
    private readonly users: Accounts,
    private readonly store: RefreshTokenStore,
    private readonly access: AccessTokens,
    private readonly refreshTtlSeconds: number,
    private readonly log: FastifyBaseLogger,
    private readonly recorder: AuthRecorder = noAuthRecorder,
  ) {}

  async register(input: Credentials & { name?: string | null }): Promise<Session> {
    const email = normaliseEmail(input.email);
    const passwordHash = await hashPassword(input.password);
    const id = uuidv7();
    // The session is stored first: with the token store down, the answer is a 503 and no account
    // exists, so retrying later is a clean registration rather than a 409.
    const refreshToken = newRefreshToken();
    await this.guard(() => this.store.issue(hashRefreshToken(refreshToken), { userId: id, familyId: uuidv7() }, this.refreshTtlSeconds));
    let user: User;
    try {
      user = await this.users.insert({ id, email, passwordHash, role: 'user', name: input.name ?? null });
    } catch (err) {
      await this.store.revokeFamily(hashRefreshToken(refreshToken), this.refreshTtlSeconds).catch(() => undefined);
      if (isUniqueViolation(err)) throw conflict('An account with this email already exists', 'email-taken');
      throw err;
    }
    return this.session(user, refreshToken);
  }

  async login(input: Credentials): Promise<Session> {
    const row = await this.users.findCredentialsByEmail(normaliseEmail(input.email));
    if (!row) {
      await burnPasswordCheck(input.password);
      this.recorder.failure('invalid_credentials');
      throw invalidCredentials();
    }
    if (!(await verifyPassword(row.passwordHash, input.password))) {
      this.recorder.failure('invalid_credentials');
      throw invalidCredentials();
    }
    if (needsRehash(row.passwordHash)) {
      await this.users.update(row.id, { passwordHash: await hashPassword(input.password) });
    }
    const { passwordHash: _omit, ...user } = row;
    return this.startSession(user);
  }

  async refresh(refreshToken: string): Promise<Session> {
    const next = newRefreshToken();
    const result = await this.guard(() =>
      this.store.rotate(hashRefreshToken(refreshToken), hashRefreshToken(next), this.refreshTtlSeconds),
    );
    if (!result.ok) {
      if (result.reason === 'reused') {
        this.log.warn({ userId: result.owner.userId, familyId: result.owner.familyId }, 'refresh token reuse: family revoked');
        this.recorder.refreshTokenReuse();
      }
      this.recorder.failure('invalid_refresh_token');
      throw invalidRefresh();
    }
    const user = await this.users.findById(result.owner.userId);
    if (!user) {
      this.recorder.failure('invalid_refresh_token');
      throw invalidRefresh();
    }
    return this.session(user, next);
  }

  async logout(refreshToken: string): Promise<void> {
    await this.guard(() => this.store.revokeFamily(hashRefreshToken(refreshToken), this.refreshTtlSeconds));
  }

  revokeAll(userId: string): Promise<void> {
    return this.guard(() => this.store.revokeUser(userId, this.refreshTtlSeconds));
  }

  private async startSession(user: User): Promise<Session> {
    const token = newRefreshToken();
    await this.guard(() =>
      this.store.issue(hashRefreshToken(token), { userId: user.id, familyId: uuidv7() }, this.refreshTtlSeconds),
    );
    return this.session(user, token);
  }

  private async session(user: User, refreshToken: string): Promise<Session> {
    return {
      user,
      accessToken: await this.access.sign({ userId: user.id, role: user.role }),
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: this.access.ttlSeconds,
    };
  }

  /** A token store that cannot answer fails closed: no session is issued or honoured. */
  private async guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof AppError) throw err;
      this.log.error({ err }, 'refresh-token store unavailable');
      throw serviceUnavailable('The session store is unavailable; try again shortly', 5);
    }
  }
}
