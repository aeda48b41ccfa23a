import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Decision } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';

/**
 * The check script, assembled from the `.lua` files next to this module's `../lua/` folder
 * (read at runtime: `src/lua/` from source, `dist/lua/` once built, where the build script
 * copies them). One algorithm per file; `check.lua` runs a batch of costs over all limits.
 */
const algorithmFiles = [
  'prelude.lua',
  'fixed-window.lua',
  'sliding-window.lua',
  'sliding-log.lua',
  'token-bucket.lua',
  'leaky-bucket.lua',
];

/** A script: the prelude and algorithm files, then `main` (a file of `../lua/`), with its SHA1. */
export function assembleScript(main: string): { source: string; sha: string } {
  const source = [...algorithmFiles, main]
    .map((file) => readFileSync(new URL(`../lua/${file}`, import.meta.url), 'utf8'))
    .join('\n');
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const check = assembleScript('check.lua');

/** Lua source of the check script. */
export const checkScript = check.source;

/** SHA1 of {@link checkScript}, for EVALSHA. */
export const checkScriptSha = check.sha;

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
