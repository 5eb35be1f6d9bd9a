// The AppError a service call is refused with.
import { expect } from 'vitest';
import { AppError } from '../../../src/shared/errors.js';

/** The AppError a call rejects with (fails the test when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected the call to be refused');
}
