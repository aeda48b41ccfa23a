import { SerializationError } from './errors.js';

/**
 * In clone mode L1 keeps its own copy of a written value: the writer keeps a reference to the
 * object it passed and may mutate it later. A value that cannot be cloned could not be read
 * back in this mode either, so it is refused here, as an unencodable value is.
 */
export function cloneForL1(value: unknown, key?: string): unknown {
  try {
    return structuredClone(value);
  } catch (error) {
    throw new SerializationError('encode', { cause: error, details: key === undefined ? {} : { key } });
  }
}

/**
 * A caller's copy of a value a flight resolved to (clone mode). A value that cannot be cloned
 * was not cached (see `cloneForL1`), so handing it out as is shares it with no L1 entry.
 */
export function copyOfFlight<T>(value: T): T {
  try {
    return structuredClone(value);
  } catch {
    return value;
  }
}

/**
 * The methods that change a Map, Set or Date in place: `Object.freeze` does not reach their
 * internal slots, so a frozen one still changes through them. Frozen values get own
 * properties of these names that throw instead (reads and copies are unaffected).
 */
const mutators = {
  map: ['set', 'delete', 'clear'],
  set: ['add', 'delete', 'clear'],
  date: Object.getOwnPropertyNames(Date.prototype).filter((name) => name.startsWith('set')),
} as const;

function refuseMutation(target: object, names: readonly string[]): void {
  for (const name of names) {
    Object.defineProperty(target, name, {
      value: () => {
        throw new TypeError(`Cannot call ${name}() on a value frozen by the cache (l1.mode 'freeze')`);
      },
    });
  }
}

/**
 * Values this module has deep-frozen. `Object.isFrozen` cannot tell: a caller may have frozen
 * only the top of a value (`Object.freeze({ list: [] })`), whose insides must still be frozen.
 * Marked before descending, so cycles end.
 */
const deepFrozen = new WeakSet<object>();

/**
 * Freezes `value` and everything it holds (objects, arrays, Maps, Sets, Dates; not typed arrays).
 * A Map, Set or Date the caller froze already cannot get the throwing mutators (its properties
 * are fixed), so its own mutators still work; its contents are frozen. Walks with a stack of its
 * own, not by recursion: a long linked list overflowed the call stack half frozen.
 */
export function deepFreeze(value: unknown): void {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const current = pending.pop();
    if (
      typeof current !== 'object' ||
      current === null ||
      ArrayBuffer.isView(current) ||
      deepFrozen.has(current)
    )
      continue;
    deepFrozen.add(current);
    if (Object.isExtensible(current)) {
      if (current instanceof Map) refuseMutation(current, mutators.map);
      else if (current instanceof Set) refuseMutation(current, mutators.set);
      else if (current instanceof Date) refuseMutation(current, mutators.date);
    }
    Object.freeze(current);
    if (current instanceof Map) {
      for (const [key, entry] of current) pending.push(key, entry);
    } else if (current instanceof Set) {
      for (const entry of current) pending.push(entry);
    } else {
      for (const entry of Object.values(current)) pending.push(entry);
    }
  }
}
