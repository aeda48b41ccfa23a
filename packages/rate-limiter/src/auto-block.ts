import { z } from 'zod';
import { isBeyondClockStep } from './algorithms/clock-step.js';

/** Auto-blocking of abusers: `violations` refusals within `withinMs` block the key for `blockMs`. */
export const autoBlockSchema = z
  .object({
    /** Refused requests within `withinMs` that trigger a block. */
    violations: z.number().int().positive(),
    /**
     * `violations` refusals within any `withinMs` block the key (counted in quarters of it: see
     * {@link violationSlots}; refusals up to 1¼ `withinMs` apart may count together, exactly
     * `5 × ⌈withinMs / 4⌉ − 1` ms: a few ms more for a `withinMs` not a multiple of 4).
     */
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

/**
 * The slots `withinMs` is counted in: violations are counted per slot of `withinMs / 4` (rounded
 * up), over the slot of now and the 4 before it, which hold every violation of the last
 * `withinMs` (so N of them within any `withinMs` block the key, as fail2ban's sliding `findtime`)
 * and none older than `withinMs` plus one slot. One count over a window that starts at the first
 * violation let up to 2N − 3 through in a sliding one; a weighted two-window estimate (the sliding
 * window algorithm's) lets nearly 2N through when they bunch at a window's end. Five counts per
 * key, whatever the traffic: an exact log would keep N − 1 times.
 */
export const violationSlots = 4;

/** How long one slot is: `withinMs / violationSlots`, rounded up. */
export function violationSlotMs(policy: AutoBlockPolicy): number {
  return Math.ceil(policy.withinMs / violationSlots);
}

/** Per-key auto-block state. */
export interface BlockState {
  /** Violations counted in the slot starting at `windowStart`. */
  violations: number;
  /** The start of the newest slot (see {@link violationSlots}). */
  windowStart: number;
  /** Violations of the slots before it, newest first, at most `violationSlots` of them. */
  earlier: readonly number[];
  /** The key is refused until this time. */
  blockedUntil: number;
  /**
   * When the block ending at `blockedUntil` began (0 when none did): what remains of a block is at
   * most `blockedUntil − blockedAt`, its own length, whatever the clock did (see {@link boundedBlock}).
   */
  blockedAt: number;
  /** Blocks so far (reset after `forgetAfterMs` without one). */
  offences: number;
}

/** A fresh, unblocked state. */
export const emptyBlockState: BlockState = {
  violations: 0,
  windowStart: 0,
  earlier: [],
  blockedUntil: 0,
  blockedAt: 0,
  offences: 0,
};

/**
 * The block of `state` as it stands at `now`: unchanged, unless the clock is behind the block's
 * start (the block was recorded by a clock that was ahead: a Redis failover to a replica whose
 * clock is behind, an NTP step back). Counted from that start, what remains of it would be its
 * length plus the step, hours or days for a clock that far off; it is moved to start now instead,
 * so it lasts its own length from the first check that sees it (as the violation slots and the
 * queueing leaky bucket bound a step back). A block left by a release that recorded no start
 * (`blockedAt` 0 or missing) stands as it is.
 */
export function boundedBlock(state: BlockState, now: number): BlockState {
  if (!(now < state.blockedAt)) return state;
  return { ...state, blockedAt: now, blockedUntil: now + (state.blockedUntil - state.blockedAt) };
}

/** Remaining block time at `now` (0 when not blocked). */
export function blockRemainingMs(state: BlockState | undefined, now: number): number {
  return state === undefined ? 0 : Math.max(0, state.blockedUntil - now);
}

/** Until when a state's violations still count: the end of its newest slot's last counted span. */
export function violationsCountUntil(state: BlockState, policy: AutoBlockPolicy): number {
  return state.windowStart + (violationSlots + 1) * violationSlotMs(policy);
}

/** Records one refused request and, at the threshold, starts a block that grows for repeat offenders. */
export function recordViolation(
  state: BlockState | undefined,
  now: number,
  policy: AutoBlockPolicy,
): BlockState {
  const current = state ?? emptyBlockState;
  const slotMs = violationSlotMs(policy);
  const start = current.windowStart;
  let violations: number;
  let windowStart: number;
  let earlier: number[];
  if (
    now - start >= (violationSlots + 1) * slotMs ||
    start - now > violationSlots * slotMs ||
    isBeyondClockStep(start, now) ||
    (now < start && current.violations === 0)
  ) {
    // Nothing counted is within reach of now: every slot is over, or (the clock went back) starts
    // after it by more than the slots span, so counting now with them would tie refusals together
    // that their times put further apart; or nothing is counted since a block or an unblock, and
    // a newest slot left at 0 with earlier counts is what Redis reads as a release before `bp`
    // unblocking the key (prelude.lua, read_earlier). The count starts again.
    violations = 1;
    windowStart = now;
    earlier = [];
  } else if (now < start) {
    // A clock that went back, within the slots' span: the violation counts in the slot of its own
    // time, as if it had come in order, not in the newest slot, where it would count with
    // refusals up to the step (20 minutes) later.
    const back = Math.ceil((start - now) / slotMs);
    violations = current.violations;
    windowStart = start;
    earlier = current.earlier.slice();
    while (earlier.length < back) earlier.push(0);
    earlier[back - 1] = earlier[back - 1]! + 1;
  } else {
    const shift = Math.floor((now - start) / slotMs);
    // The newest slot and those after it that saw no violation move into the earlier ones.
    earlier =
      shift === 0
        ? current.earlier.slice()
        : [...new Array<number>(shift - 1).fill(0), current.violations, ...current.earlier].slice(
            0,
            violationSlots,
          );
    violations = shift === 0 ? current.violations + 1 : 1;
    windowStart = start + shift * slotMs;
  }
  let counted = violations;
  for (const count of earlier) counted += count;
  if (counted < policy.violations) return { ...current, violations, windowStart, earlier };
  const forgotten = now - current.blockedUntil >= policy.forgetAfterMs;
  const offences = (forgotten ? 0 : current.offences) + 1;
  const blockMs = Math.min(
    policy.maxBlockMs,
    Math.round(policy.blockMs * policy.multiplier ** (offences - 1)),
  );
  return {
    violations: 0,
    windowStart: now,
    earlier: [],
    blockedUntil: now + blockMs,
    blockedAt: now,
    offences,
  };
}
