import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Decision } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';
import { windowOffsetOf } from '../window-offset.js';

/**
 * The check script, assembled from the `.lua` files next to this module's `../lua/` folder
 * (read at runtime: `src/lua/` from source, `dist/lua/` once built, where the build script
 * copies them). One algorithm per file; `check.lua` runs a batch of costs over all limits.
 */
export const algorithmFiles = [
  'prelude.lua',
  'fixed-window.lua',
  'sliding-window.lua',
  'sliding-log.lua',
  'token-bucket.lua',
  'leaky-bucket.lua',
];

/**
 * One Lua program in the two forms Redis runs: a script for EVAL/EVALSHA and a Redis 7 function
 * library for FCALL. Both are the prelude and algorithm files, then `main` (a file of `../lua/`),
 * which defines `entry(keys, args)`. The script calls `entry` at its end, so each call also runs
 * every definition before it (about 3 µs of the ~9 µs a one-key check costs the server, measured
 * with `INFO commandstats`); the library registers `entry` instead, so the definitions run once
 * per load. Library and function names carry the source's hash: two releases of this package
 * side by side (a rolling deploy) each find their own function and never replace the other's.
 */
export interface LuaProgram {
  /** Source for EVAL. */
  source: string;
  /** SHA1 of {@link source}, for EVALSHA. */
  sha: string;
  /** Source for `FUNCTION LOAD` (it starts with `#!lua name=<library>`). */
  library: string;
  /** The library's name (for `FUNCTION DELETE`). */
  libraryName: string;
  /** The function it registers, for FCALL. */
  functionName: string;
}

/** Assembles the prelude, the algorithm files and `main` into a {@link LuaProgram}. */
export function assembleScript(main: string): LuaProgram {
  const body = [...algorithmFiles, main]
    .map((file) => readFileSync(new URL(`../lua/${file}`, import.meta.url), 'utf8'))
    .join('\n');
  // The prelude declares locals named KEYS and ARGV (set per call), so EVAL's globals are kept
  // under other names first.
  const source = `local CALL_KEYS, CALL_ARGV = KEYS, ARGV\n${body}\nreturn entry(CALL_KEYS, CALL_ARGV)\n`;
  const sha = createHash('sha1').update(source).digest('hex');
  const name = `noa_rl_${main.replace(/\.lua$/, '')}_${sha.slice(0, 12)}`;
  const library = `#!lua name=${name}\n${body}\nredis.register_function('${name}', entry)\n`;
  return { source, sha, library, libraryName: name, functionName: name };
}

/** A script that runs alone (no prelude, no algorithms), for EVALSHA (EVAL on NOSCRIPT). */
export interface PlainScript {
  source: string;
  sha: string;
}

/** The script in `file` of `../lua/`, as it is. */
export function plainScript(file: string): PlainScript {
  const source = readFileSync(new URL(`../lua/${file}`, import.meta.url), 'utf8');
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const check = assembleScript('check.lua');

/** The check script (EVAL) and function library (FCALL). */
export const checkProgram: LuaProgram = check;

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
 * A limit's fifth value in the scripts' arguments (after algorithm, limit, windowMs, burst): the
 * leaky bucket's `queueMaxDelayMs`, a window's offset for the store key `key` (see
 * window-offset.ts; the scripts count windows at Redis `TIME` minus it), otherwise 0. One slot
 * serves both: windows have no queue and buckets no windows, so a call sends no more values.
 */
export function fifthPolicyValue(policy: LimitPolicy, key: string): number {
  return policy.queueMaxDelayMs ?? windowOffsetOf(policy, key);
}

/**
 * Whether the scripts' arguments of `limits` differ per key: some limit has an offset per key
 * (`windowOffsetMs: 'key'`), so its {@link fifthPolicyValue} is the key's.
 */
export function policyValuesPerKey(limits: readonly LimitPolicy[]): boolean {
  for (const policy of limits) if (policy.windowOffsetMs === 'key') return true;
  return false;
}

/**
 * The numbers of a check's reply (check.lua's short form, and its batch form that ran): one string
 * of integers separated by single spaces, a leading `-` for a negative one; `undefined` when `text`
 * is not such a string. The script sends them as one bulk string rather than an array of integers:
 * ioredis 6's RESP decoder spends about 0.3 µs of client CPU per integer of a reply (ioredis 5's
 * redis-parser, 0.015), and one string costs it about as much as one integer.
 */
export function replyValues(text: string): number[] | undefined {
  const values: number[] = [];
  let value = 0;
  let negative = false;
  let digits = 0;
  for (let index = 0; index <= text.length; index += 1) {
    const code = index < text.length ? text.charCodeAt(index) : 32;
    if (code >= 48 && code <= 57) {
      value = value * 10 + (code - 48);
      digits += 1;
    } else if (code === 32) {
      if (digits === 0) return undefined;
      values.push(negative ? -value : value);
      value = 0;
      negative = false;
      digits = 0;
    } else if (code === 45 && digits === 0 && !negative) negative = true;
    else return undefined;
  }
  return values;
}

/** How many numbers the scripts reply per limit (see {@link decisionFromReply}). */
export const replyValuesPerLimit = 6;

/**
 * One limit's decision as the scripts reply it: {@link replyValuesPerLimit} numbers from `at`
 * (allowed 0/1, remaining, resetMs, retryAfterMs, delayMs, nextMs).
 */
export function decisionFromReply(policy: LimitPolicy, values: readonly number[], at: number): Decision {
  const decision: Decision = {
    name: policy.name,
    windowMs: policy.windowMs,
    allowed: values[at] === 1,
    limit: capacityOf(policy),
    remaining: values[at + 1]!,
    resetMs: values[at + 2]!,
    // -1 is the scripts' NEVER (prelude.lua): a cost above the limit's capacity.
    retryAfterMs: values[at + 3] === -1 ? Number.POSITIVE_INFINITY : values[at + 3]!,
    delayMs: values[at + 4]!,
    nextMs: values[at + 5]!,
  };
  if (policy.algorithm === 'token-bucket' || policy.algorithm === 'leaky-bucket')
    decision.rate = policy.limit;
  return decision;
}
