import { z } from 'zod';
import { isBeyondClockStep } from './algorithms/clock-step.js';

/** Auto-blocking of abusers: `violations` refusals within `withinMs` block the key for `blockMs`. */
export const autoBlockSchema = z
  .object({
    /** Refused requests within `withinMs` that trigger a block. */
    violations: z.number().int().positive(),
    /** The window over which violations are counted. */
    withinMs: z.number().int().positive(),
    /** First block's length. */
    blockMs: z.number().int().positive(),
    /** Each repeat offence multiplies the block by this (2 = 1 min, 2 min, 4 min…). */
    multiplier: z.number().min(1).default(2),
    /** Longest block. */
    maxBlockMs: z.number().int().positive().default(86_400_000),
    /** An offender with no block for this long starts again from `blockMs`. */
    forgetAfterMs: z.number().int().positive().default(86_400_000),
  })
  .strict()
  .superRefine((value, context) => {
    // Every block is cut to maxBlockMs: a longer first block would be shortened without a word.
    if (value.blockMs > value.maxBlockMs)
      context.addIssue({
        code: 'custom',
        path: ['blockMs'],
        message: `must be at most maxBlockMs (${value.maxBlockMs}; the default is one day): raise maxBlockMs for longer blocks`,
      });
  });

/** Auto-block options as written by users. */
export type AutoBlockOptions = z.input<typeof autoBlockSchema>;
/** Parsed auto-block policy. */
export type AutoBlockPolicy = z.infer<typeof autoBlockSchema>;

/** Per-key auto-block state. */
export interface BlockState {
  /** Violations counted in the window starting at `windowStart`. */
  violations: number;
  windowStart: number;
  /** The key is refused until this time. */
  blockedUntil: number;
  /** Blocks so far (reset after `forgetAfterMs` without one). */
  offences: number;
}

/** A fresh, unblocked state. */
export const emptyBlockState: BlockState = { violations: 0, windowStart: 0, blockedUntil: 0, offences: 0 };

/** Remaining block time at `now` (0 when not blocked). */
export function blockRemainingMs(state: BlockState | undefined, now: number): number {
  return state === undefined ? 0 : Math.max(0, state.blockedUntil - now);
}

/** Records one refused request and, at the threshold, starts a block that grows for repeat offenders. */
export function recordViolation(
  state: BlockState | undefined,
  now: number,
  policy: AutoBlockPolicy,
): BlockState {
  const current = state ?? emptyBlockState;
  // A window a clock far ahead started (further than any step back) is not one to count in: its
  // violations would count until the clock caught up, hours of them adding up to a block.
  const inWindow =
    now - current.windowStart < policy.withinMs && !isBeyondClockStep(current.windowStart, now);
  const violations = (inWindow ? current.violations : 0) + 1;
  const windowStart = inWindow ? current.windowStart : now;
  if (violations < policy.violations) return { ...current, violations, windowStart };
  const forgotten = now - current.blockedUntil >= policy.forgetAfterMs;
  const offences = (forgotten ? 0 : current.offences) + 1;
  const blockMs = Math.min(
    policy.maxBlockMs,
    Math.round(policy.blockMs * policy.multiplier ** (offences - 1)),
  );
  return { violations: 0, windowStart: now, blockedUntil: now + blockMs, offences };
}
