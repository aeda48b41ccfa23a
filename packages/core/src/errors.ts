import type { z } from 'zod';
import { describeIssues } from './option-issues.js';

/** Options accepted by every {@link NoaError}. */
export interface NoaErrorOptions {
  /** The underlying error, kept for `error.cause` chains. */
  cause?: unknown;
  /** Structured facts about the failure (key, field, timeout…), safe to log. */
  details?: Record<string, unknown>;
}

/** Shared by every copy of @noa/core (a registered symbol), so a copy knows another's errors. */
const noaErrorBrand = Symbol.for('@noa/core.NoaError');

/**
 * core's own error classes, whose names are unique: only they match another copy's classes by
 * name. A package's classes are matched as usual (cache-manager and connection-pool both have a
 * `BackendUnavailableError`, and neither is the other).
 */
const coreClasses = new Set<unknown>();

/**
 * `value instanceof type`, or, for one of core's classes, `value` is a branded error of a class
 * (or subclass) named as `type`.
 */
function isInstanceByName(type: { name: string; prototype: unknown }, value: unknown): boolean {
  if (Function.prototype[Symbol.hasInstance].call(type, value)) return true;
  if (!coreClasses.has(type)) return false;
  if (typeof value !== 'object' || value === null || !(noaErrorBrand in value)) return false;
  type Prototype = { constructor?: { name?: unknown } } | null;
  for (let proto = Object.getPrototypeOf(value) as Prototype; proto; proto = Object.getPrototypeOf(proto)) {
    if (proto.constructor?.name === type.name) return true;
  }
  return false;
}

/**
 * Base class of every error a Noa package throws. `code` is stable across releases
 * (`NOA_<WHAT>`), so callers branch on it rather than on messages. Each class states its code as a
 * literal type (`TimeoutError['code']` is `'NOA_TIMEOUT'`) and each package exports the union of
 * its codes (core's: {@link NoaCoreErrorCode}), so a `switch (error.code)` can be exhaustive.
 */
export class NoaError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly details: Record<string, unknown>;

  /**
   * For core's classes, `instanceof` also holds for errors of another copy of @noa/core installed
   * beside this one: a branded error whose class, or one of its base classes, has this class's
   * name (a package's `RedisError` is an instance of either copy's `NoaError`).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class on the right of instanceof (a subclass too).
    return isInstanceByName(this, value);
  }

  constructor(code: Code, message: string, options: NoaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
  }

  /**
   * The error for `JSON.stringify` (JSON logs, HTTP bodies): its own fields (`name`, `code`,
   * `details`, a subclass's) plus `message` and the `cause` chain, which are not enumerable on an
   * Error. A cause that is not an Error is left out (it may not be serialisable).
   */
  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = {
      ...Object.fromEntries(Object.entries(this)),
      message: this.message,
    };
    if (this.cause !== undefined) json.cause = causeToJSON(this.cause);
    return json;
  }
}

function causeToJSON(cause: unknown): unknown {
  if (cause instanceof NoaError) return cause.toJSON();
  if (!(cause instanceof Error)) return undefined;
  const { code } = cause as { code?: unknown };
  return {
    name: cause.name,
    message: cause.message,
    ...(code === undefined ? {} : { code }),
    ...(cause.cause instanceof Error ? { cause: causeToJSON(cause.cause) } : {}),
  };
}

Object.defineProperty(NoaError.prototype, noaErrorBrand, { value: true });

/** One problem found while validating options. `path` is the dotted field name. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/**
 * Thrown at construction when options fail validation; the message names each bad field:
 * `Invalid <component> options: <path>: <message>; …` (a component whose name ends in "options",
 * such as `job options`, is not followed by a second one).
 */
export class ConfigError extends NoaError<'NOA_CONFIG_INVALID'> {
  readonly issues: ConfigIssue[];

  constructor(component: string, issues: ConfigIssue[]) {
    const list = issues.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ');
    // 'job options', 'Queue.defaultJobOptions': "options" once, not "Invalid job options options".
    const named = /(^|[\s._-])options$/i.test(component) || /[a-z]Options$/.test(component);
    super('NOA_CONFIG_INVALID', `Invalid ${named ? component : `${component} options`}: ${list}`, {
      details: { component, issues },
    });
    this.issues = issues;
  }

  /** The dotted paths of every bad field, e.g. `['limits.0.points']`. */
  get fields(): string[] {
    return this.issues.map((issue) => issue.path);
  }
}

/** Thrown when an operation does not finish within its deadline. */
export class TimeoutError extends NoaError<'NOA_TIMEOUT'> {
  constructor(operation: string, timeoutMs: number, options: NoaErrorOptions = {}) {
    super('NOA_TIMEOUT', `${operation} did not finish within ${timeoutMs} ms`, {
      ...options,
      details: { operation, timeoutMs, ...options.details },
    });
  }
}

/** Thrown when a circuit breaker is open and the call was not attempted. */
export class CircuitOpenError extends NoaError<'NOA_CIRCUIT_OPEN'> {
  constructor(operation: string, options: NoaErrorOptions = {}) {
    super('NOA_CIRCUIT_OPEN', `${operation} was not attempted: circuit breaker is open`, {
      ...options,
      details: { operation, ...options.details },
    });
  }
}

/** Thrown when an operation is used after `close()`. */
export class ClosedError extends NoaError<'NOA_CLOSED'> {
  constructor(component: string) {
    super('NOA_CLOSED', `${component} is closed`, { details: { component } });
  }
}

/** The errors core's own classes throw, told apart by `code` (a `switch` on it narrows the error). */
export type NoaCoreError = ConfigError | TimeoutError | CircuitOpenError | ClosedError;

/** The codes of core's own errors: `NOA_CONFIG_INVALID`, `NOA_TIMEOUT`, `NOA_CIRCUIT_OPEN`, `NOA_CLOSED`. */
export type NoaCoreErrorCode = NoaCoreError['code'];

/**
 * Parses `input` with a zod schema and returns the typed result, or throws a
 * {@link ConfigError} naming every bad field. Use at construction of public objects.
 */
export function parseOptions<Schema extends z.ZodType>(
  component: string,
  schema: Schema,
  input: unknown,
): z.output<Schema> {
  // `reportInput` lets the messages say what was given (see describeIssues for what is echoed).
  const result = schema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  const issues = describeIssues(result.error.issues, input);
  throw new ConfigError(component, issues);
}

for (const type of [NoaError, ConfigError, TimeoutError, CircuitOpenError, ClosedError])
  coreClasses.add(type);
