import { breakerOptionsSchema, type Clock, maxTimerMs } from '@noa/core';
import { z } from 'zod';
import { autoBlockSchema } from './auto-block.js';
import { isAddressOrCidr, isWideMappedRange } from './ip-list.js';
import type { MetricsRegistry } from './limiter-metrics.js';
import { loggerOptionSchema } from './logger-option.js';
import { defaultLimitName, limitSchema, maxLimitsPerRule } from './policy.js';
import { isRateLimitStore, type RateLimitStore } from './stores/store.js';
import { isWellFormedText } from './utf16-key.js';

/**
 * The checks of a list of limits as a whole, its issues at `path` (`[]` for `limits`, `[role]` for
 * a role's rule): a custom issue there keeps its own words in a role's union, where zod's `min`
 * and `max` issues at the list's own level read as what the union takes.
 */
function checkLimitList(
  limits: readonly { name?: string | undefined }[],
  context: z.RefinementCtx,
  path: readonly PropertyKey[],
): void {
  if (limits.length === 0)
    context.addIssue({ code: 'custom', path: [...path], message: 'give at least one limit' });
  if (limits.length > maxLimitsPerRule)
    context.addIssue({
      code: 'custom',
      path: [...path],
      message: `give at most ${maxLimitsPerRule} limits per rule, got ${limits.length}`,
    });
  // Default names count too: an unnamed first limit is `default`, so a second one named
  // `default` would make two policies of one name in the headers.
  const names = limits.map((limit, index) => limit.name ?? defaultLimitName(index));
  names.forEach((name, index) => {
    const first = names.indexOf(name);
    if (first === index) return;
    // Reported on the limit that was given the name; the other may have it by default.
    const [named, other] = limits[index]!.name === undefined ? [first, index] : [index, first];
    const byDefault = limits[other]!.name === undefined ? ` (the default name of limit ${other})` : '';
    context.addIssue({
      code: 'custom',
      path: [...path, named, 'name'],
      message: `duplicate limit name "${name}"${byDefault}`,
    });
  });
}

// Lists are `.readonly()`: the limiter only reads them, so a config written `as const` (or typed
// readonly) is an option too; mutable arrays still are (readonly-config-types.test.ts).
const limitsSchema = z
  .array(limitSchema)
  .readonly()
  .superRefine((limits, context) => checkLimitList(limits, context, []));
/**
 * A role's rule: its limits or `'unlimited'`, as plain schemas so that core's messages name each
 * bad field (`roles.pro.0.windowMs: required`); the list's own checks run on the record.
 */
const roleRuleSchema = z.union([z.array(limitSchema).readonly(), z.literal('unlimited')]);
const cidrSchema = z
  .string()
  .refine(isAddressOrCidr, 'an IPv4/IPv6 address or CIDR range')
  .refine(
    (value) => !isWideMappedRange(value),
    // "expected …, got '::ffff:10.0.0.0/8'": what was meant is an IPv4 range, which this is not.
    'an IPv4 range (10.0.0.0/8), or an IPv4-mapped one with a prefix of at least 96 (::ffff:10.0.0.0/104); below 96 bits a mapped range is an IPv6 one holding every IPv4 client',
  );

/** What to do when the store (Redis) is slow, down, or its breaker is open. */
export const failModes = ['open', 'closed', 'local'] as const;

/** Options of {@link RateLimiter}. */
export const rateLimiterOptionsSchema = z
  .object({
    /** Where counters live. Default: a new `MemoryStore`. */
    store: z
      .custom<RateLimitStore>(isRateLimitStore, 'a RateLimitStore (MemoryStore, RedisStore)')
      .optional(),
    /** The limits every key gets, all checked at once (e.g. 10/s burst and 1000/day). */
    limits: limitsSchema,
    /** Limits by role, replacing `limits` for callers of that role; `'unlimited'` skips limiting. */
    roles: z
      .record(z.string(), roleRuleSchema)
      .superRefine((roles, context) => {
        for (const [role, rule] of Object.entries(roles))
          if (rule !== 'unlimited') checkLimitList(rule, context, [role]);
        for (const role of Object.keys(roles))
          if (!isWellFormedText(role))
            context.addIssue({
              code: 'custom',
              path: [role],
              message:
                'role names must be well-formed Unicode (a lone surrogate cannot be encoded into store keys)',
            });
      })
      .default({}),
    /**
     * Namespace of the keys in the store (several limiters can share one store). Well-formed
     * Unicode, as role names are, and not starting with `}`: on Redis the key is hash-tagged `{<prefix>:…}`, and `{}` is an empty tag, which
     * Redis Cluster ignores (the key's state would span slots).
     */
    prefix: z
      .string()
      .min(1)
      .refine(
        isWellFormedText,
        'must be well-formed Unicode (a lone surrogate cannot be encoded into store keys: resetAll() on Redis would find none of them)',
      )
      .refine(
        (prefix) => !prefix.startsWith('}'),
        'must not start with "}": the Redis store tags each key "{<prefix>:…}", and Redis Cluster ignores an empty tag "{}" (a key\'s state would span slots)',
      )
      .default('rl'),
    /** Addresses/CIDRs never limited. */
    allow: z.array(cidrSchema).readonly().default([]),
    /** Addresses/CIDRs always refused. */
    deny: z.array(cidrSchema).readonly().default([]),
    /** Block keys that keep hitting the limit. */
    autoBlock: autoBlockSchema.optional(),
    /**
     * Store failure: `open` admits, `closed` refuses (503 from the middleware), both with
     * `source: 'fail-mode'`; `local` limits in-process at `limit ÷ expectedInstances` (`source: 'fallback'`).
     */
    failMode: z.enum(failModes).default('local'),
    /** App instances sharing the store: the local fallback grants each `limit ÷ expectedInstances`. */
    expectedInstances: z.number().int().positive().default(1),
    /** Longest a check waits for a remote store before the fail mode applies. */
    deadlineMs: z
      .number()
      .positive()
      // A longer timer fires at once (Node clamps it to 1 ms): every check would time out.
      .max(maxTimerMs, `must be at most ${maxTimerMs} (the longest timer Node can set)`)
      .default(25),
    /** Circuit breaker around the remote store: error ratio over a sliding window, half-open probes (core defaults). */
    breaker: breakerOptionsSchema.optional(),
    /** Refuse keys known to be over their limit locally, until their reset, without a store call. */
    localBlockCache: z.boolean().default(true),
    /** Most keys the local block cache holds. */
    localBlockMaxKeys: z.number().int().positive().default(10_000),
    /** Merge concurrent checks of one key in the same tick into one store call. */
    batch: z.boolean().default(true),
    /**
     * This limiter's name in its metrics' `limiter` label, so that limiters sharing a registry (a
     * login and an API limiter) are told apart; limiters of one name add up. Also the `limiter`
     * of what it publishes on `noa:rate-limiter:check`.
     */
    name: z.string().min(1).default('limiter'),
    /** prom-client registry for metrics (none: metrics cost nothing). */
    registry: z
      .custom<MetricsRegistry>(
        (value) => typeof value === 'object' && value !== null,
        'a prom-client Registry',
      )
      .optional(),
    /**
     * During a store outage, at most one warning per this many ms of each kind (failed checks,
     * failed adjustments, breaker probes); the lines held back are counted (core's `LogSampler`).
     */
    logIntervalMs: z.number().int().positive().default(10_000),
    /** Logger (winston fits; pino via core's fromPino). */
    logger: loggerOptionSchema.optional(),
    /** Clock for local decisions (block cache, fallback). */
    clock: z
      .custom<Clock>((value) => typeof (value as Clock)?.now === 'function', 'must have now()')
      .optional(),
  })
  .strict();

/** Options of {@link RateLimiter} as written by users. */
export type RateLimiterOptions = z.input<typeof rateLimiterOptionsSchema>;
/** Parsed options. */
export type ParsedRateLimiterOptions = z.infer<typeof rateLimiterOptionsSchema>;
/** One of {@link failModes}. */
export type FailMode = (typeof failModes)[number];
