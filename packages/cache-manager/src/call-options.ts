import { ConfigError, maxTimerMs, parseOptions } from '@noa/core';
import { z } from 'zod';
import {
  getOrSetOptionsSchema,
  isEntryTtlMs,
  namespaceNameSchema,
  setManyItemSchema,
  setOptionsSchema,
  undefinedValueMessage,
} from './cache-options.js';
import { illFormedMessage, isWellFormed } from './well-formed-text.js';

/** A check of one present (not undefined) option value; mirrors its zod rule. */
type Rule = (value: unknown) => boolean;

const positiveInt: Rule = (value) => typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
/** A timeout a Node timer can wait for (see `timerMs` in cache-options.ts). */
const timerMs: Rule = (value) => positiveInt(value) && (value as number) <= maxTimerMs;
const nonNegativeInt: Rule = (value) =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
/** `softTimeoutMs`: a timer's wait or 0 (see cache-options.ts). */
const softTimeoutMs: Rule = (value) => nonNegativeInt(value) && (value as number) <= maxTimerMs;
const nonNegativeNumber: Rule = (value) => typeof value === 'number' && Number.isFinite(value) && value >= 0;
/** Tags: strings, each well-formed (see well-formed-text.ts). */
const stringList: Rule = (value) => {
  if (!Array.isArray(value)) return false;
  for (let index = 0; index < value.length; index += 1) {
    if (typeof value[index] !== 'string' || !isWellFormed(value[index])) return false;
  }
  return true;
};

/** The rules of {@link setOptionsSchema}, by field. */
export const setOptionRules: Readonly<Record<string, Rule>> = {
  ttlMs: isEntryTtlMs,
  graceMs: nonNegativeInt,
  slidingTtlMs: nonNegativeInt,
  tags: stringList,
};

/** The rules of a `setMany` item: its key and value, then its write options. */
const setManyItemRules: Readonly<Record<string, Rule>> = {
  ...setOptionRules,
  key: (value) => typeof value === 'string' && isWellFormed(value),
  value: () => true,
};

/** The rules of {@link getOrSetOptionsSchema}, by field. */
export const getOrSetOptionRules: Readonly<Record<string, Rule>> = {
  ...setOptionRules,
  softTimeoutMs,
  hardTimeoutMs: timerMs,
  lockTimeoutMs: timerMs,
  earlyRefreshBeta: nonNegativeNumber,
  refreshThresholdMs: nonNegativeInt,
  forceFresh: (value) => typeof value === 'boolean',
};

/**
 * True when `options` passes `rules`: an object whose every own field is known and either
 * undefined or valid (an unknown field is refused even when undefined, as zod's `strict` does). Hand-written so that a valid call costs tens of nanoseconds, not a zod parse;
 * `test/call-options.test.ts` checks that it agrees with the zod schemas.
 */
export function passes(options: unknown, rules: Readonly<Record<string, Rule>>): boolean {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) return false;
  for (const field in options) {
    if (!Object.hasOwn(options, field)) continue;
    const rule = rules[field];
    if (rule === undefined) return false;
    const value = (options as Record<string, unknown>)[field];
    if (value !== undefined && !rule(value)) return false;
  }
  return true;
}

/**
 * Throws the `ConfigError` of `schema` for `input` (naming every bad field). Called only once
 * the fast check failed; should the schema accept what the fast check refused, it returns.
 */
function explain(component: string, schema: z.ZodType, input: unknown): void {
  parseOptions(component, schema, input);
}

/**
 * Validates the per-call options of `getOrSet`/`wrap`; throws `ConfigError` naming the bad field
 * (and the method, `component`).
 */
export function checkGetOrSetOptions(options: unknown, component = 'cache-manager getOrSet'): void {
  if (!passes(options, getOrSetOptionRules)) explain(component, getOrSetOptionsSchema, options);
}

/** Validates the options of `set` (or `getOrSetMany`: `component`); throws `ConfigError` naming the bad field. */
export function checkSetOptions(options: unknown, component = 'cache-manager set'): void {
  if (!passes(options, setOptionRules)) explain(component, setOptionsSchema, options);
}

/** `value`'s type as an error message says it: `undefined`, `null`, `array`, `number`… */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

/** The `ConfigError` of a call argument of the wrong type (`method`: `get`, `wrap`…). */
export function argumentError(method: string, path: string, expected: string, value: unknown): ConfigError {
  return new ConfigError(`cache-manager ${method}`, [
    { path, message: `must be ${expected}, got ${typeName(value)}` },
  ]);
}

/** The `ConfigError` of a key, tag or name holding a lone surrogate (see well-formed-text.ts). */
export function illFormedError(method: string, path: string): ConfigError {
  return new ConfigError(`cache-manager ${method}`, [{ path, message: illFormedMessage }]);
}

/**
 * `tags` as a list, or `ConfigError` naming `tags` (or `tags.<i>`) when it is not a string or a
 * list of them, or one holds a lone surrogate.
 */
export function checkTags(tags: unknown, method: string): readonly string[] {
  if (typeof tags === 'string') {
    if (!isWellFormed(tags)) throw illFormedError(method, 'tags.0');
    return [tags];
  }
  if (!Array.isArray(tags)) throw argumentError(method, 'tags', 'a string or an array of strings', tags);
  for (let index = 0; index < tags.length; index += 1) {
    if (typeof tags[index] !== 'string')
      throw argumentError(method, `tags.${index}`, 'a string', tags[index]);
    if (!isWellFormed(tags[index])) throw illFormedError(method, `tags.${index}`);
  }
  return tags;
}

/** Throws `ConfigError` naming `path` unless `value` is a function. */
export function checkFunction(value: unknown, method: string, path: string): void {
  if (typeof value !== 'function') throw argumentError(method, path, 'a function', value);
}

/** Validates what a factory sets through its context; throws `ConfigError` naming the bad field. */
export function checkFactoryOptions(options: unknown): void {
  if (!passes(options, setOptionRules)) explain('cache-manager factory context', setOptionsSchema, options);
}

/** Validates `setMany` items (key, value and options); the `ConfigError` path names the item (`2.ttlMs`). */
export function checkSetManyItems(items: readonly unknown[]): void {
  for (let index = 0; index < items.length; index += 1) {
    const item = items[index];
    if (
      !passes(item, setManyItemRules) ||
      typeof (item as { key?: unknown }).key !== 'string' ||
      (item as { value?: unknown }).value === undefined
    ) {
      explain('cache-manager setMany', setManyItemSchema.array(), items);
      return;
    }
  }
}

const namespaceArgumentSchema = z.object({ name: namespaceNameSchema });

/** Validates the name of `cache.namespace(name)`; throws `ConfigError` naming `name`. */
export function checkNamespaceName(name: unknown): void {
  if (typeof name !== 'string' || name === '' || name.includes(':') || !isWellFormed(name)) {
    explain('cache-manager namespace', namespaceArgumentSchema, { name });
  }
}

/** Validates the value of `set`: `undefined` is refused (`ConfigError` naming `value`). */
export function checkValue(value: unknown): void {
  if (value === undefined) {
    throw new ConfigError('cache-manager set', [{ path: 'value', message: undefinedValueMessage }]);
  }
}
