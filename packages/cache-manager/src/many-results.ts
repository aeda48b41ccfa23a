import type { ManyFactoryResult } from './cache-options.js';

/** A promise with its resolve and reject (one per key of a `getOrSetMany` flight). */
export interface Settler<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/** A {@link Settler}. */
export function settle<T>(): Settler<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((onValue, onError) => {
    resolve = onValue;
    reject = onError;
  });
  return { promise, resolve, reject };
}

/**
 * A `getOrSetMany` factory returned a result of the wrong shape: its message says what, and
 * becomes the reason in each key's `FactoryError` message (the factory did not throw).
 */
export class ManyResultShapeError extends TypeError {}

/** The values of a `getOrSetMany` factory, aligned with `keys` (a bad shape is a factory error). */
export function alignMany<T>(produced: ManyFactoryResult<T>, keys: readonly string[]): (T | undefined)[] {
  if (produced instanceof Map) return keys.map((key) => produced.get(key));
  if (Array.isArray(produced)) {
    if (produced.length === keys.length) return produced as (T | undefined)[];
    throw new ManyResultShapeError(
      `the getOrSetMany factory returned ${produced.length} values for ${keys.length} keys (an array must align with its keys)`,
    );
  }
  throw new ManyResultShapeError(
    'the getOrSetMany factory must return a Map or an array aligned with its keys',
  );
}
