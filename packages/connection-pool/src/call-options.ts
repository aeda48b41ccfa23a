import { maxTimerMs, parseOptions } from '@noa/core';
import { z } from 'zod';
import { timerBoundMessage } from './pool-options.js';

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

/** Options of `query()`: strict, so `{ sesion }` or `{ target: 'replcia' }` is refused. */
export const queryOptionsSchema = z
  .object({
    /** Session key for read-your-writes (a user or request id); else the `withSession` context is used. */
    session: z.string().optional(),
    /** Forces the target: `primary` always works; `replica` skips read-your-writes (the statement must still be a read). */
    target: z.enum(['primary', 'replica']).optional(),
    /** Abandons waiting for a connection when this fires. */
    signal: abortSignal.optional(),
  })
  .strict();

/** Per-query options. */
export type QueryOptions = z.input<typeof queryOptionsSchema>;

/** Options of `Pool#acquire()` / `use()` (and `RedisPool`'s): strict. */
export const acquireOptionsSchema = z
  .object({
    /** Gives up waiting (rejects with `AcquireAbortedError`) when this signal aborts. */
    signal: abortSignal.optional(),
    /** Overrides the pool's `acquireTimeoutMs` for this call. */
    timeoutMs: z.number().int().nonnegative().max(maxTimerMs, timerBoundMessage).optional(),
  })
  .strict();

/** Per-acquire options. */
export type AcquireOptions = z.input<typeof acquireOptionsSchema>;

/** Options of `drain()` (`Pool`, `PgPool`, `MysqlPool`): strict. */
export const drainOptionsSchema = z
  .object({
    /**
     * How long to wait for lent connections to come back (default: the pool's
     * `closeTimeoutMs`); then they are closed and `drain()` rejects with `DrainTimeoutError`.
     */
    timeoutMs: z.number().int().nonnegative().max(maxTimerMs, timerBoundMessage).optional(),
  })
  .strict();

/** Options of `drain()`. */
export type DrainOptions = z.input<typeof drainOptionsSchema>;

/** Options of a SQL pool's `acquire(role, options)`: strict. */
export const clusterAcquireOptionsSchema = z.object({ signal: abortSignal.optional() }).strict();

/** Options of `PgPool#connect()`: strict. */
export const connectOptionsSchema = z
  .object({
    /** `primary` (the default) or `replica` for read-only work. */
    role: z.enum(['primary', 'replica']).optional(),
    signal: abortSignal.optional(),
  })
  .strict();

/** Options of `MongoPool#readDb()`: strict. */
export const readDbOptionsSchema = z.object({ session: z.string().optional() }).strict();

/**
 * Options of `MongoPool#run()`: none yet, and strict, so a deadline or session passed to it is
 * refused instead of ignored (the deadline is the pool's `queryTimeoutMs`).
 */
export const mongoRunOptionsSchema = z.object({}).strict();

/**
 * Options of `MongoPool#connect()`, `db()` and `noteWrite()`: none, and strict like
 * {@link mongoRunOptionsSchema}, so a deadline, read preference or window passed to one of them
 * is refused instead of ignored (`db()` always uses the primary; the others are pool settings).
 */
export const mongoNoOptionsSchema = z.object({}).strict();

/** The `session` argument of `MongoPool#noteWrite()`: a key `readDb({ session })` can match. */
export const noteWriteSessionSchema = z.object({ session: z.string().optional() }).strict();

/**
 * A cheap validator of one per-call options type: a test per known key, and the schema it
 * stands for. The test must never accept what the schema refuses.
 */
export interface OptionsCheck {
  readonly component: string;
  readonly schema: z.ZodType;
  readonly keys: Readonly<Record<string, (value: unknown) => boolean>>;
}

function optionsCheck(
  component: string,
  schema: z.ZodType,
  keys: Record<string, (value: unknown) => boolean>,
): OptionsCheck {
  // No prototype: `toString` or `constructor` is an unknown key, not a test.
  return { component, schema, keys: Object.assign(Object.create(null) as object, keys) };
}

const isString = (value: unknown) => typeof value === 'string';
const isRole = (value: unknown) => value === 'primary' || value === 'replica';
const isTimeoutMs = (value: unknown) =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= maxTimerMs;

export const queryOptionsCheck = optionsCheck('query', queryOptionsSchema, {
  session: isString,
  target: isRole,
  signal: isAbortSignal,
});
export const acquireOptionsCheck = optionsCheck('acquire', acquireOptionsSchema, {
  signal: isAbortSignal,
  timeoutMs: isTimeoutMs,
});
export const clusterAcquireOptionsCheck = optionsCheck('acquire', clusterAcquireOptionsSchema, {
  signal: isAbortSignal,
});
export const connectOptionsCheck = optionsCheck('connect', connectOptionsSchema, {
  role: isRole,
  signal: isAbortSignal,
});
export const getConnectionOptionsCheck = optionsCheck('getConnection', connectOptionsSchema, {
  role: isRole,
  signal: isAbortSignal,
});
export const readDbOptionsCheck = optionsCheck('readDb', readDbOptionsSchema, { session: isString });
export const mongoRunOptionsCheck = optionsCheck('run', mongoRunOptionsSchema, {});
export const mongoConnectOptionsCheck = optionsCheck('connect', mongoNoOptionsSchema, {});
export const mongoDbOptionsCheck = optionsCheck('db', mongoNoOptionsSchema, {});
export const noteWriteOptionsCheck = optionsCheck('noteWrite', mongoNoOptionsSchema, {});
export const noteWriteSessionCheck = optionsCheck('noteWrite', noteWriteSessionSchema, {
  session: isString,
});

/**
 * Checks per-call options on the hot path: no allocation and no zod when they are valid (a
 * `for…in` over the keys, one test each). Anything the tests do not recognise is parsed by the
 * schema, which returns the `ConfigError` naming each bad field (or undefined if it accepts).
 */
export function badOptions(check: OptionsCheck, options: unknown): Error | undefined {
  if (options === undefined) return undefined;
  if (typeof options === 'object' && options !== null && passes(check.keys, options)) return undefined;
  try {
    parseOptions(check.component, check.schema, options);
    return undefined;
  } catch (error) {
    return error as Error;
  }
}

function passes(keys: Readonly<Record<string, (value: unknown) => boolean>>, options: object): boolean {
  for (const key in options) {
    const test = keys[key];
    if (test === undefined) return false;
    const value = (options as Record<string, unknown>)[key];
    // An option given as undefined is as good as left out (zod's optional agrees).
    if (value !== undefined && !test(value)) return false;
  }
  return true;
}
