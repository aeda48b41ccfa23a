import { SerializationError } from './errors.js';

/**
 * In clone mode L1 keeps its own copy of a written value: the writer keeps a reference to the
 * object it passed and may mutate it later. A value that cannot be cloned could not be read
 * back in this mode either, so it is refused here, as an unencodable value is.
 */
export function cloneForL1(value: unknown): unknown {
  try {
    return structuredClone(value);
  } catch (error) {
    throw new SerializationError('encode', { cause: error });
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

/** Freezes `value` and everything it holds (objects, arrays, Maps, Sets; not typed arrays). */
export function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value) || ArrayBuffer.isView(value))
    return;
  Object.freeze(value);
  if (value instanceof Map) {
    for (const [key, entry] of value) {
      deepFreeze(key);
      deepFreeze(entry);
    }
    return;
  }
  if (value instanceof Set) {
    for (const entry of value) deepFreeze(entry);
    return;
  }
  for (const entry of Object.values(value)) deepFreeze(entry);
}
