// Idempotency-key store port (draft-ietf-httpapi-idempotency-key-header). A key is first claimed
// by one request (an in-flight marker holding that request's fingerprint and a random token),
// then either completed with the response it produced (kept for the TTL, replayed to retries) or
// released (the key is free again). Only the request holding the claim's token can complete or
// release it, so a claim whose lease ran out and was taken over cannot be overwritten by its
// first, late owner.

/** What a replay answers: the status, the headers worth repeating, and the body as sent. */
export interface StoredResponse {
  status: number;
  /** Lower-case names (content-type, location, etag). */
  headers: Record<string, string>;
  body: string;
}

/** The claim a request holds until it completes or releases it. */
export interface Claim {
  key: string;
  token: string;
  fingerprint: string;
  /**
   * When the key was first claimed (ms since the epoch), kept for the key's TTL: the same for
   * every claim of the key, including one that takes over a lapsed claim whose owner died. What
   * the request creates is named from it (and the key), so a takeover names it the same.
   */
  seed: number;
}

export type ClaimResult =
  | { state: 'claimed'; claim: Claim }
  /** Another request holds the key and has not answered yet. */
  | { state: 'in-flight'; fingerprint: string }
  /** The key's request was answered: this is what it answered. */
  | { state: 'done'; fingerprint: string; response: StoredResponse };

export interface IdempotencyStore {
  readonly kind: 'redis' | 'memory';
  /**
   * Claims the key atomically for `leaseMs` (a crashed owner's claim lapses then), or says who
   * holds it. The claim's seed is the first claim's time, kept `ttlSeconds`. Throws when the
   * store cannot be reached.
   */
  claim(key: string, fingerprint: string, leaseMs: number, ttlSeconds: number): Promise<ClaimResult>;
  /** Replaces the claim with its response, kept `ttlSeconds`; false when the claim was no longer held. */
  complete(claim: Claim, response: StoredResponse, ttlSeconds: number): Promise<boolean>;
  /** Frees the key, if the claim still holds it. */
  release(claim: Claim): Promise<void>;
}

// One encoding for both stores, so that what Redis holds reads like what memory holds.
// In flight: `p|<token>|<fingerprint>`; answered: `d|<fingerprint>|<JSON of the response>`.
// Tokens and fingerprints are base64url (no '|').
export const inFlightValue = (claim: Pick<Claim, 'token' | 'fingerprint'>) => `p|${claim.token}|${claim.fingerprint}`;
export const doneValue = (fingerprint: string, response: StoredResponse) => `d|${fingerprint}|${JSON.stringify(response)}`;

/** Reads a stored value back; an unreadable one counts as in flight (never replayed, never run twice). */
export function decodeValue(value: string): Exclude<ClaimResult, { state: 'claimed' }> {
  const [state, second = '', ...rest] = value.split('|');
  if (state === 'd') {
    try {
      return { state: 'done', fingerprint: second, response: JSON.parse(rest.join('|')) as StoredResponse };
    } catch {
      return { state: 'in-flight', fingerprint: second };
    }
  }
  return { state: 'in-flight', fingerprint: rest[0] ?? '' };
}
