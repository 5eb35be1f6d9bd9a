// A message no retry can fix (malformed, or a schemaVersion this consumer does not know). Consumer
// frameworks send it straight to the dead-letter queue instead of redelivering it.
export class PoisonMessageError extends Error {
  /** For duck-typing across module copies: `(err as { poison?: boolean }).poison === true`. */
  readonly poison = true as const;
  constructor(
    message: string,
    readonly reason: 'malformed' | 'unknown-schema-version',
  ) {
    super(message);
    this.name = 'PoisonMessageError';
  }
}

export const isPoisonMessage = (err: unknown): err is PoisonMessageError =>
  err instanceof PoisonMessageError || (typeof err === 'object' && err !== null && (err as { poison?: unknown }).poison === true);
