import { z } from 'zod';

/** SQL transaction isolation levels, as `withTransaction({ isolation })` takes them. */
export const isolationLevels = [
  'read uncommitted',
  'read committed',
  'repeatable read',
  'serializable',
] as const;

/**
 * An `AbortSignal`, told by its shape rather than `instanceof`, so a signal of another realm
 * (a test environment, a polyfill) is accepted as the code using it only reads `aborted` and
 * listens for `abort`.
 */
export function isAbortSignal(value: unknown): value is AbortSignal {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AbortSignal).aborted === 'boolean' &&
    typeof (value as AbortSignal).addEventListener === 'function'
  );
}

const abortSignal = z.custom<AbortSignal>(isAbortSignal, { message: 'must be an AbortSignal' });

/** Options of `withTransaction`: strict, so a misspelt key is refused instead of ignored. */
export const transactionOptionsSchema = z
  .object({
    /** Isolation level; mapped to fixed SQL text by the driver, never spliced in. */
    isolation: z.enum(isolationLevels).optional(),
    /** Opens the transaction READ ONLY (and credits no write to the session). */
    readOnly: z.boolean().optional(),
    /** Error codes (SQLSTATE like `40001`, MySQL errno like `1213`, or driver codes) that retry the whole function. */
    retryOn: z.array(z.string().min(1)).readonly().optional(),
    /** Retries after the first attempt (default: the pool's `maxTransactionRetries`). */
    maxRetries: z.number().int().nonnegative().optional(),
    /** Session key credited with the write for read-your-writes. */
    session: z.string().optional(),
    /** Abandons waiting for a connection (and the pause between retries) when this fires. */
    signal: abortSignal.optional(),
  })
  .strict();

/** Options of `withTransaction`. */
export type TransactionOptions = z.input<typeof transactionOptionsSchema>;
