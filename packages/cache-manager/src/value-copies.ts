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

/** The frozen copy handed to the callers that joined a flight, by the value the flight resolved to. */
const joinerCopies = new WeakMap<object, unknown>();

/**
 * A flight's value for a caller that joined it (`freeze` mode): the caller that ran the factory
 * gets the factory's own object and may change it, so every other caller gets a frozen copy,
 * one per value whoever joins (none when the flight resolved to a value the cache froze: read
 * from L1 or L2). Handed out as is, a joiner shared the runner's object and saw its edits.
 */
export function frozenForJoiner<T>(value: T): T {
  if (typeof value !== 'object' || value === null || deepFrozen.has(value)) return value;
  let copy = joinerCopies.get(value);
  if (copy === undefined) {
    copy = frozenCopy(value);
    joinerCopies.set(value, copy);
  }
  return copy as T;
}

/** Whether `key` is an array index ("0"…"4294967294"). */
function isIndex(key: string): boolean {
  const index = Number(key);
  return Number.isInteger(index) && index >= 0 && index < 2 ** 32 - 1 && String(index) === key;
}

/**
 * Copies one own property of `source` into `copy`, defined, not assigned: an own `__proto__`
 * key (JSON.parse makes them) stays a key.
 */
function copyProperty(
  source: object,
  copy: object,
  key: string | symbol,
  copyOf: (item: unknown) => unknown,
): void {
  Object.defineProperty(copy, key, {
    value: copyOf((source as Record<string | symbol, unknown>)[key]),
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** Whether `value` is copied by {@link frozenCopy}: a plain object, an array, a Map, Set or Date. */
function copiable(value: object): boolean {
  if (Array.isArray(value) || value instanceof Map || value instanceof Set || value instanceof Date)
    return true;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** An empty copy of a {@link copiable} value (a Date is whole), filled by {@link frozenCopy}. */
function shell(value: object): object {
  if (Array.isArray(value)) return new Array(value.length);
  if (value instanceof Map) return new Map();
  if (value instanceof Set) return new Set();
  if (value instanceof Date) return new Date(value.getTime());
  return Object.create(Object.getPrototypeOf(value));
}

/**
 * What L1 keeps of a written value in `freeze` mode: a deep-frozen copy, so that the writer's
 * objects (and unrelated ones they reference) are not frozen under it. Plain objects, arrays,
 * Maps, Sets and Dates are copied (shared references and cycles kept as such); a class
 * instance or any other object is kept as it is and frozen in place (a copy would lose its
 * internal slots and private fields), as are typed arrays, never frozen. A value the cache
 * froze already (read back from it) is not copied again. One walk to copy, one to freeze: the
 * cost of the write, never of a read.
 */
export function frozenCopy(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const copies = new Map<object, object>();
  const copyOf = (item: unknown): unknown => {
    if (typeof item !== 'object' || item === null || deepFrozen.has(item) || !copiable(item)) return item;
    let copy = copies.get(item);
    if (copy === undefined) {
      copy = shell(item);
      copies.set(item, copy);
      pending.push(item);
    }
    return copy;
  };
  const pending: object[] = [];
  const root = copyOf(value);
  while (pending.length > 0) {
    const source = pending.pop()!;
    const copy = copies.get(source)!;
    if (source instanceof Date) continue;
    if (Array.isArray(source)) {
      const target = copy as unknown[];
      for (let index = 0; index < source.length; index += 1) target[index] = copyOf(source[index]);
      // Named properties beside the elements (`Object.assign(rows, { total })`): an array's own
      // keys list its indices first, so they are the keys after the last index.
      const keys = Object.keys(source);
      let first = keys.length;
      while (first > 0 && !isIndex(keys[first - 1]!)) first -= 1;
      for (let index = first; index < keys.length; index += 1)
        copyProperty(source, target, keys[index]!, copyOf);
    } else if (source instanceof Map) {
      for (const [key, entry] of source) (copy as Map<unknown, unknown>).set(copyOf(key), copyOf(entry));
    } else if (source instanceof Set) {
      for (const entry of source) (copy as Set<unknown>).add(copyOf(entry));
    } else {
      for (const key of Object.keys(source)) copyProperty(source, copy, key, copyOf);
    }
    // Enumerable symbol-keyed properties, as `{ ...value }` copies them: reference mode keeps
    // them, and the copy must read back as what was written.
    for (const symbol of Object.getOwnPropertySymbols(source)) {
      if (Object.prototype.propertyIsEnumerable.call(source, symbol))
        copyProperty(source, copy, symbol, copyOf);
    }
  }
  deepFreeze(root);
  return root;
}
