/**
 * A cheap estimate of a decoded value's heap footprint in bytes, for the L1 byte budget when
 * no encoded size is at hand (memory-only caches). Walks at most `budget` nodes so huge or
 * cyclic values cost bounded time; the rest is extrapolated.
 */
export function estimateSize(value: unknown, budget = 2_000): number {
  let visited = 0;
  let bytes = 0;
  const stack: unknown[] = [value];
  const seen = new Set<object>();
  while (stack.length > 0) {
    if (visited >= budget) {
      // Extrapolate: assume the unvisited nodes cost the average of the visited ones.
      return Math.ceil(bytes + (bytes / visited) * stack.length);
    }
    const current = stack.pop();
    visited += 1;
    switch (typeof current) {
      case 'string':
        bytes += 16 + current.length * 2;
        break;
      case 'number':
      case 'boolean':
      case 'undefined':
        bytes += 8;
        break;
      case 'bigint':
        bytes += 16 + Math.ceil(current.toString(16).length / 2);
        break;
      case 'object': {
        if (current === null) {
          bytes += 8;
          break;
        }
        if (seen.has(current)) break;
        seen.add(current);
        if (ArrayBuffer.isView(current)) {
          bytes += 64 + current.byteLength;
        } else if (current instanceof Date) {
          bytes += 32;
        } else if (current instanceof Map) {
          bytes += 64;
          for (const [key, entry] of current) stack.push(key, entry);
        } else if (current instanceof Set) {
          bytes += 64;
          for (const entry of current) stack.push(entry);
        } else if (Array.isArray(current)) {
          bytes += 32 + current.length * 8;
          for (const entry of current) stack.push(entry);
        } else {
          bytes += 32;
          for (const [key, entry] of Object.entries(current)) {
            bytes += 16 + key.length * 2;
            stack.push(entry);
          }
        }
        break;
      }
      default:
        bytes += 8;
    }
  }
  return bytes;
}
