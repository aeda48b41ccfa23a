/**
 * A container being walked by {@link estimateSize}: its children are read one at a time (never
 * copied whole), and those the budget leaves unwalked are charged at the average of the walked ones.
 */
interface Frame {
  /** Children in all (a Map's entry is two: its key and its value). */
  readonly count: number;
  /** The next child, or undefined when the iteration ended (a Map or Set changed meanwhile). */
  readonly next: () => { value: unknown } | undefined;
  /** Children walked so far. */
  walked: number;
  /** `bytes` once the container's own cost was counted: what its walked children added since. */
  readonly startBytes: number;
  /** `bytes` before the container's own cost: its whole estimate is what was added since. */
  beforeBytes: number;
  /** The container holding it (undefined for the value itself). */
  parent: Frame | undefined;
  /** Walked children whose whole subtree was walked, and their bytes. */
  completeCount: number;
  completeBytes: number;
  /** A child or this container was cut short by the budget (its size is extrapolated). */
  cut: boolean;
}

/**
 * A cheap estimate of a decoded value's heap footprint in bytes, for the L1 byte budget when
 * no encoded size is at hand (memory-only caches, compressed values). Walks at most `budget`
 * nodes so huge or cyclic values cost bounded time. A container's own size (its slots, its
 * keys) is counted exactly; the children the budget leaves unwalked are charged the average of
 * that container's walked children (their whole subtrees), so a large array of records costs
 * about its length times one record. Extrapolated from the average of every node walked
 * instead, the container's own size was charged again for each unwalked child: quadratic in
 * the length (an array of 200,000 numbers came to 160 MB, past the default bound, and a
 * memory-only cache did not keep it).
 */
export function estimateSize(value: unknown, budget = 2_000): number {
  let visited = 0;
  let bytes = 0;
  const seen = new Set<object>();
  const frames: Frame[] = [];

  /** Counts one node's own cost; a container with children gets a frame. */
  const visit = (current: unknown, parent: Frame | undefined): void => {
    const before = bytes;
    const frameCount = frames.length;
    visitNode(current);
    if (frames.length > frameCount) {
      const frame = frames[frames.length - 1]!;
      frame.parent = parent;
      frame.beforeBytes = before;
    } else if (parent !== undefined) {
      parent.completeCount += 1;
      parent.completeBytes += bytes - before;
    }
  };

  const visitNode = (current: unknown): void => {
    visited += 1;
    switch (typeof current) {
      case 'string':
        bytes += 16 + current.length * 2;
        return;
      case 'number':
      case 'boolean':
      case 'undefined':
        bytes += 8;
        return;
      case 'bigint':
        bytes += 16 + Math.ceil(current.toString(16).length / 2);
        return;
      case 'object':
        break;
      default:
        bytes += 8;
        return;
    }
    if (current === null) {
      bytes += 8;
      return;
    }
    if (seen.has(current)) return;
    seen.add(current);
    if (ArrayBuffer.isView(current)) {
      bytes += 64 + current.byteLength;
    } else if (current instanceof ArrayBuffer || current instanceof SharedArrayBuffer) {
      // No enumerable keys: walked as an object, a buffer of any size cost 32 bytes.
      bytes += 64 + current.byteLength;
    } else if (current instanceof Date) {
      bytes += 32;
    } else if (current instanceof Map) {
      bytes += 64;
      const entries = current.entries();
      let pendingValue: { value: unknown } | undefined;
      push(current.size * 2, () => {
        if (pendingValue !== undefined) {
          const next = pendingValue;
          pendingValue = undefined;
          return next;
        }
        const entry = entries.next();
        if (entry.done) return undefined;
        pendingValue = { value: entry.value[1] };
        return { value: entry.value[0] };
      });
    } else if (current instanceof Set) {
      bytes += 64;
      const members = current.values();
      push(current.size, () => {
        const member = members.next();
        return member.done ? undefined : { value: member.value };
      });
    } else if (Array.isArray(current)) {
      bytes += 32 + current.length * 8;
      let index = 0;
      const array = current;
      push(array.length, () => ({ value: array[index++] }));
    } else {
      bytes += 32;
      const keys = Object.keys(current);
      for (const key of keys) bytes += 16 + key.length * 2;
      let index = 0;
      const record = current as Record<string, unknown>;
      push(keys.length, () => (index < keys.length ? { value: record[keys[index++]!] } : undefined));
    }
  };

  const push = (count: number, next: Frame['next']): void => {
    if (count > 0)
      frames.push({
        count,
        next,
        walked: 0,
        startBytes: bytes,
        beforeBytes: bytes,
        parent: undefined,
        completeCount: 0,
        completeBytes: 0,
        cut: false,
      });
  };

  visit(value, undefined);
  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!;
    if (frame.walked < frame.count && visited < budget) {
      const child = frame.next();
      if (child !== undefined) {
        frame.walked += 1;
        visit(child.value, frame);
        continue;
      }
    }
    frames.pop();
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
            ? (bytes - frame.startBytes) / frame.walked
            : 8;
      bytes += perChild * unwalked;
    }
    const parent = frame.parent;
    if (parent === undefined) continue;
    if (frame.cut) parent.cut = true;
    else {
      parent.completeCount += 1;
      parent.completeBytes += bytes - frame.beforeBytes;
    }
  }
  return Math.ceil(bytes);
}
