/**
 * A container being walked by {@link estimateSize}: its children are read one at a time (never
 * copied whole), and those the budget leaves unwalked are charged at the average of the walked ones.
 */
interface Frame {
  /** Children in all (a Map's entry is two: its key and its value). */
  count: number;
  /** Children walked so far. */
  walked: number;
  /** An array's elements, an object's values (by `keys`), a Map's or Set's iterator. */
  array: readonly unknown[] | undefined;
  record: Record<string, unknown> | undefined;
  keys: string[] | undefined;
  iterator: Iterator<unknown> | undefined;
  /** Whether `iterator` gives a Map's entries (a key, then its value) rather than a Set's members. */
  map: boolean;
  /** A Map's value, read with its key and walked after it. */
  pending: { value: unknown } | undefined;
  /** `bytes` before the container's own cost: its whole estimate is what was added since. */
  beforeBytes: number;
  /** `bytes` once its own cost was counted: what its walked children added since. */
  startBytes: number;
  /** The container holding it (undefined for the value itself). */
  parent: Frame | undefined;
  /** Walked children whose whole subtree was walked, and their bytes. */
  completeCount: number;
  completeBytes: number;
  /** A child or this container was cut short by the budget (its size is extrapolated). */
  cut: boolean;
}

/** The walk's state (one object per call: the helpers below are not closures made per call). */
interface Walk {
  bytes: number;
  visited: number;
  seen: Set<object>;
  frames: Frame[];
}

/**
 * A cheap estimate of a decoded value's heap footprint in bytes, for the L1 byte budget when
 * no encoded size is at hand (memory-only caches, compressed values). Walks at most `budget`
 * nodes (depth-first) so huge or cyclic values cost bounded time. What lies below the node
 * where the budget ran out is unknown and not charged: a value deeper than the walk (a long
 * linked list) is charged for the part walked only, whatever its length (see the README's
 * `l1.maxBytes`); no bounded walk can tell its length. A container's own size (its slots, its
 * keys) is counted exactly; the children the budget leaves unwalked are charged the average of
 * that container's walked children (their whole subtrees), so a large array of records costs
 * about its length times one record. Extrapolated from the average of every node walked
 * instead, the container's own size was charged again for each unwalked child: quadratic in
 * the length (an array of 200,000 numbers came to 160 MB, past the default bound, and a
 * memory-only cache did not keep it).
 */
export function estimateSize(value: unknown, budget = 2_000): number {
  if (typeof value !== 'object' || value === null) return leafSize(value);
  const walk: Walk = { bytes: 0, visited: 0, seen: new Set(), frames: [] };
  visit(walk, value, undefined);
  const frames = walk.frames;
  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!;
    if (frame.walked < frame.count && walk.visited < budget) {
      const child = nextChild(frame);
      if (child !== undefined) {
        frame.walked += 1;
        visit(walk, child.value, frame);
        continue;
      }
    }
    frames.pop();
    finish(walk, frame);
  }
  return Math.ceil(walk.bytes);
}

/** The cost of a value that is not an object (or null). */
function leafSize(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return 16 + value.length * 2;
    case 'bigint':
      return 16 + Math.ceil(value.toString(16).length / 2);
    default:
      return 8;
  }
}

/** Counts one node's own cost; a container with children gets a frame. */
function visit(walk: Walk, current: unknown, parent: Frame | undefined): void {
  walk.visited += 1;
  const before = walk.bytes;
  if (typeof current !== 'object' || current === null) {
    walk.bytes += leafSize(current);
  } else if (!walk.seen.has(current)) {
    walk.seen.add(current);
    if (ArrayBuffer.isView(current)) {
      walk.bytes += 64 + current.byteLength;
    } else if (current instanceof ArrayBuffer || current instanceof SharedArrayBuffer) {
      // No enumerable keys: walked as an object, a buffer of any size cost 32 bytes.
      walk.bytes += 64 + current.byteLength;
    } else if (current instanceof Date) {
      walk.bytes += 32;
    } else if (current instanceof Map || current instanceof Set) {
      walk.bytes += 64;
      if (current.size > 0) {
        if (current instanceof Map)
          open(walk, parent, before, current.size * 2, { iterator: current.entries(), map: true });
        else open(walk, parent, before, current.size, { iterator: current.values() });
        return;
      }
    } else if (Array.isArray(current)) {
      walk.bytes += 32 + current.length * 8;
      if (current.length > 0) {
        open(walk, parent, before, current.length, { array: current });
        return;
      }
    } else {
      walk.bytes += 32;
      const keys = Object.keys(current);
      for (const key of keys) walk.bytes += 16 + key.length * 2;
      if (keys.length > 0) {
        open(walk, parent, before, keys.length, { record: current as Record<string, unknown>, keys });
        return;
      }
    }
  }
  if (parent !== undefined) {
    parent.completeCount += 1;
    parent.completeBytes += walk.bytes - before;
  }
}

/** The children of a container: one of these. */
type Children = Partial<Pick<Frame, 'array' | 'record' | 'keys' | 'iterator' | 'map'>>;

/** Starts walking a container of `count` children, whose own cost is counted (from `beforeBytes`). */
function open(
  walk: Walk,
  parent: Frame | undefined,
  beforeBytes: number,
  count: number,
  children: Children,
): void {
  walk.frames.push({
    count,
    walked: 0,
    array: children.array,
    record: children.record,
    keys: children.keys,
    iterator: children.iterator,
    map: children.map ?? false,
    pending: undefined,
    beforeBytes,
    startBytes: walk.bytes,
    parent,
    completeCount: 0,
    completeBytes: 0,
    cut: false,
  });
}

/** The frame's next child, undefined when a Map or Set ended early (changed meanwhile). */
function nextChild(frame: Frame): { value: unknown } | undefined {
  if (frame.array !== undefined) return { value: frame.array[frame.walked] };
  if (frame.keys !== undefined) return { value: frame.record![frame.keys[frame.walked]!] };
  if (frame.pending !== undefined) {
    const pending = frame.pending;
    frame.pending = undefined;
    return pending;
  }
  const entry = frame.iterator!.next();
  if (entry.done) return undefined;
  if (!frame.map) return { value: entry.value };
  const [key, entryValue] = entry.value as [unknown, unknown];
  frame.pending = { value: entryValue };
  return { value: key };
}

/** Charges a finished (or cut) container's unwalked children and reports it to its parent. */
function finish(walk: Walk, frame: Frame): void {
  const unwalked = frame.count - frame.walked;
  if (unwalked > 0) {
    frame.cut = true;
    // A child never walked costs what the walked ones whose subtree was walked whole did on
    // average: a sibling cut short holds extrapolations of its own, and taken as the measure
    // of the others (a linked list's small fields, beside its `next`), the estimate doubled
    // at every level. Failing those, the average of every walked child; 8 bytes if none was.
    const perChild =
      frame.completeCount > 0
        ? frame.completeBytes / frame.completeCount
        : frame.walked > 0
          ? (walk.bytes - frame.startBytes) / frame.walked
          : 8;
    walk.bytes += perChild * unwalked;
  }
  const parent = frame.parent;
  if (parent === undefined) return;
  if (frame.cut) parent.cut = true;
  else {
    parent.completeCount += 1;
    parent.completeBytes += walk.bytes - frame.beforeBytes;
  }
}
