// The auth service's public keys, for processes that do not run the auth module (`serve
// --modules tasks`): fetched from AUTH_JWKS_URL, cached for the response's Cache-Control max-age
// (bounded), refreshed in the background before that runs out, and fetched at once when a token
// names a kid the cache does not hold, at most once per cooldown, so a flood of made-up kids costs
// the auth service one request per cooldown. A failed fetch keeps the keys already held: tokens
// with known kids verify while auth is down; a token with an unknown kid then answers 503 with
// Retry-After (it may well be valid, signed by a key published since: docs/decisions.md).
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { Actor } from '../shared/actor.js';
import { serviceUnavailable } from '../shared/errors.js';
import { ACCESS_TOKEN_ALGS, JwtAccessTokenVerifier } from './access-token.js';
import type { AccessTokenVerifier } from './auth.js';

export const JWKS_DEFAULT_MAX_AGE_SECONDS = 300;
export const JWKS_MIN_MAX_AGE_SECONDS = 10;
export const JWKS_MAX_MAX_AGE_SECONDS = 3600;
/** The background refresh runs at this fraction of max-age, so the cache is renewed before it goes stale. */
const REFRESH_AT = 0.8;

type Fetch = (url: string, init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<Pick<Response, 'status' | 'headers' | 'json'>>;

export interface RemoteJwksOptions {
  url: string;
  /** AUTH_JWKS_COOLDOWN_MS: the least time between two fetches caused by unknown kids. */
  cooldownMs: number;
  timeoutMs?: number;
  /** Background refresh on a timer (off in unit tests, which call refresh() themselves). */
  background?: boolean;
  fetch?: Fetch;
  now?: () => number;
  warn?: (obj: object, msg: string) => void;
}

export interface JwksState {
  kids: string[];
  /** Until when the cached set is fresh (ms); 0 before the first successful fetch. */
  freshUntilMs: number;
  /** Whether the last fetch failed (auth unreachable, or an unusable answer). */
  lastFailed: boolean;
  fetches: number;
}

/** max-age of a Cache-Control header, bounded; the default when absent or unreadable. */
export function maxAgeOf(cacheControl: string | null): number {
  const m = cacheControl ? /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl) : null;
  const seconds = m ? Number(m[1]) : cacheControl && /no-cache|no-store/i.test(cacheControl) ? 0 : JWKS_DEFAULT_MAX_AGE_SECONDS;
  return Math.min(JWKS_MAX_MAX_AGE_SECONDS, Math.max(JWKS_MIN_MAX_AGE_SECONDS, seconds));
}

export class RemoteJwks {
  private keys = new Map<string, { alg: string; key: KeyObject }>();
  private freshUntilMs = 0;
  private lastAttemptMs = -Infinity;
  private lastFailed = false;
  private fetches = 0;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly fetch: Fetch;

  constructor(private readonly opts: RemoteJwksOptions) {
    this.now = opts.now ?? Date.now;
    this.fetch = opts.fetch ?? ((url, init) => fetch(url, init));
  }

  /** Fetches the keys now (in the background) and keeps them fresh until close(). */
  start(): void {
    void this.refresh();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  state(): JwksState {
    return { kids: [...this.keys.keys()], freshUntilMs: this.freshUntilMs, lastFailed: this.lastFailed, fetches: this.fetches };
  }

  /** One fetch at a time; never throws: a failure keeps the keys held and is remembered. */
  refresh(): Promise<void> {
    return (this.inflight ??= this.fetchOnce().finally(() => {
      this.inflight = undefined;
      this.schedule();
    }));
  }

  /** The key for a token's kid and alg (see the file's comment for when it fetches). */
  async key(kid: string, alg: string): Promise<KeyObject> {
    let k = this.keys.get(kid);
    if (!k) {
      if (this.inflight) await this.inflight;
      else if (this.now() - this.lastAttemptMs >= this.opts.cooldownMs) await this.refresh();
      k = this.keys.get(kid);
      if (!k && this.lastFailed) {
        const waitMs = Math.max(0, this.lastAttemptMs + this.opts.cooldownMs - this.now());
        throw serviceUnavailable('The access token names a signing key this service has not seen, and the auth service cannot be reached to fetch it', Math.max(1, Math.ceil(waitMs / 1000)));
      }
    } else if (this.now() >= this.freshUntilMs && !this.inflight && this.now() - this.lastAttemptMs >= this.opts.cooldownMs) {
      void this.refresh(); // stale (no timer, or it was late): renew behind this request
    }
    if (!k || k.alg !== alg) throw new Error('unknown key');
    return k.key;
  }

  private async fetchOnce(): Promise<void> {
    this.lastAttemptMs = this.now();
    this.fetches++;
    try {
      const res = await this.fetch(this.opts.url, { signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000), headers: { accept: 'application/json' } });
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      const body = (await res.json()) as { keys?: unknown };
      const keys = new Map<string, { alg: string; key: KeyObject }>();
      for (const jwk of Array.isArray(body.keys) ? (body.keys as Record<string, unknown>[]) : []) {
        const { kid, alg } = jwk;
        if (typeof kid !== 'string' || typeof alg !== 'string' || !(ACCESS_TOKEN_ALGS as readonly string[]).includes(alg)) continue;
        if (jwk.use !== undefined && jwk.use !== 'sig') continue;
        try {
          keys.set(kid, { alg, key: createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }) });
        } catch {
          // an unusable entry is skipped; the others still count
        }
      }
      if (keys.size === 0) throw new Error('no usable key in the answer');
      this.keys = keys;
      this.freshUntilMs = this.lastAttemptMs + maxAgeOf(res.headers.get('cache-control')) * 1000;
      this.lastFailed = false;
    } catch (err) {
      this.lastFailed = true;
      this.opts.warn?.({ url: this.opts.url, err: err instanceof Error ? err.message : String(err), kids: this.keys.size }, 'JWKS fetch failed; verifying with the keys already held');
    }
  }

  private schedule(): void {
    if (!this.opts.background || this.closed) return;
    clearTimeout(this.timer);
    const delayMs = this.lastFailed
      ? Math.max(1000, this.opts.cooldownMs) // auth down: try again after the cooldown
      : Math.max(1000, (this.freshUntilMs - this.lastAttemptMs) * REFRESH_AT);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
    this.timer.unref();
  }
}

export interface RemoteTokensOptions extends RemoteJwksOptions {
  issuer: string;
  audience: string;
}

/** `tokens.verify(token)` against the auth service's JWKS: what src/http/auth.ts uses where the auth module does not run. */
export class RemoteAccessTokens implements AccessTokenVerifier {
  readonly jwks: RemoteJwks;
  private readonly verifier: JwtAccessTokenVerifier;

  constructor(opts: RemoteTokensOptions) {
    this.jwks = new RemoteJwks(opts);
    this.verifier = new JwtAccessTokenVerifier((kid, alg) => this.jwks.key(kid, alg), { issuer: opts.issuer, audience: opts.audience, now: opts.now });
  }

  verify(token: string): Promise<Actor> {
    return this.verifier.verify(token);
  }
}
