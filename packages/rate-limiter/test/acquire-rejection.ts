import { expect } from 'vitest';
import { AcquireError } from '../src/index.js';

/** The rejection of `promise`, an `AcquireError` (fails the test if it resolves or rejects otherwise). */
export async function rejectionOf(promise: Promise<unknown>): Promise<AcquireError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(AcquireError);
  return outcome as AcquireError;
}
