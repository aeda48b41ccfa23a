import { z } from 'zod';

/** How long to wait before each retry. Stored with the job, so it must be plain data. */
export const backoffSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('exponential'),
      /** Delay before the first retry; doubles each attempt. */
      delayMs: z.number().int().nonnegative().default(1_000),
      /** Upper bound of any one delay. */
      maxDelayMs: z.number().int().positive().default(3_600_000),
      /** Share of the delay that is randomised ("equal jitter"): 0 = none, 1 = full jitter. */
      jitter: z.number().min(0).max(1).default(0.5),
    })
    .strict(),
  z.object({ type: z.literal('fixed'), delayMs: z.number().int().nonnegative() }).strict(),
  z
    .object({
      type: z.literal('custom'),
      /** Name of a strategy registered in the worker's `backoffStrategies` option. */
      strategy: z.string().min(1),
    })
    .strict(),
]);

/** Backoff as given by users (defaults optional). */
export type BackoffInput = z.input<typeof backoffSchema>;
/** Backoff after parsing (defaults filled). */
export type Backoff = z.output<typeof backoffSchema>;

/** A user strategy: the delay before retry number `attempt` (1-based) after `error`. */
export type BackoffStrategy = (attempt: number, error: Error) => number;

/**
 * Longest delay before a retry: `maxDelayMs` of job-options (kept here, as job-options imports
 * this module), the longest delay every provider supports (RabbitMQ refuses a longer delay queue).
 */
export const maxRetryDelayMs = 4_200_000_000;

/**
 * The delay in ms before retry `attempt` (1 = the first retry), at most `maxRetryDelayMs`
 * (= `maxDelayMs`: a longer one, from a custom strategy, a fixed delay or an exponential cap, is
 * clamped to it). `random` returns a value in [0, 1) and is injected so tests are deterministic. Pure.
 */
export function backoffDelay(
  backoff: Backoff,
  attempt: number,
  random: () => number = Math.random,
  strategies: Record<string, BackoffStrategy> = {},
  error: Error = new Error('unknown'),
): number {
  return Math.min(maxRetryDelayMs, unboundedDelay(backoff, attempt, random, strategies, error));
}

function unboundedDelay(
  backoff: Backoff,
  attempt: number,
  random: () => number = Math.random,
  strategies: Record<string, BackoffStrategy> = {},
  error: Error = new Error('unknown'),
): number {
  if (backoff.type === 'fixed') return backoff.delayMs;
  if (backoff.type === 'custom') {
    const strategy = strategies[backoff.strategy];
    if (!strategy) return 0;
    const value = strategy(attempt, error);
    return Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
  }
  const exponent = Math.min(Math.max(attempt - 1, 0), 52);
  const ceiling = Math.min(backoff.maxDelayMs, backoff.delayMs * 2 ** exponent);
  const randomPart = ceiling * backoff.jitter;
  return Math.round(ceiling - randomPart + randomPart * random());
}
