import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Decision } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';

/**
 * The check script, assembled from the `.lua` files next to this module's `../lua/` folder
 * (read at runtime: `src/lua/` from source, `dist/lua/` once built, where the build script
 * copies them). One algorithm per file; `check.lua` runs a batch of costs over all limits.
 */
const parts = [
  'prelude.lua',
  'fixed-window.lua',
  'sliding-window.lua',
  'sliding-log.lua',
  'token-bucket.lua',
  'leaky-bucket.lua',
  'check.lua',
];

/** Lua source of the check script. */
export const checkScript = parts
  .map((file) => readFileSync(new URL(`../lua/${file}`, import.meta.url), 'utf8'))
  .join('\n');

/** SHA1 of {@link checkScript}, for EVALSHA. */
export const checkScriptSha = createHash('sha1').update(checkScript).digest('hex');

/** Algorithm codes used in the script's arguments. */
export const algorithmCodes = {
  'fixed-window': 1,
  'sliding-window': 2,
  'sliding-log': 3,
  'token-bucket': 4,
  'leaky-bucket': 5,
} as const;

/**
 * One limit's decision as the scripts reply it: five numbers from `at` (allowed 0/1, remaining,
 * resetMs, retryAfterMs, delayMs).
 */
export function decisionFromReply(policy: LimitPolicy, values: readonly number[], at: number): Decision {
  return {
    name: policy.name,
    windowMs: policy.windowMs,
    allowed: values[at] === 1,
    limit: capacityOf(policy),
    remaining: values[at + 1]!,
    resetMs: values[at + 2]!,
    retryAfterMs: values[at + 3]!,
    delayMs: values[at + 4]!,
  };
}
