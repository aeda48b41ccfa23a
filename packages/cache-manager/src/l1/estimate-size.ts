/**
 * A cheap estimate of a decoded value's heap footprint in bytes, for the L1 byte budget when
 * no encoded size is at hand (memory-only caches, compressed values). Walks at most `budget`
 * nodes so huge or cyclic values cost bounded time; the rest is extrapolated.
 */
export function estimateSize(value: unknown, budget = 2_000): number {
  let visited = 0;
  let bytes = 0;
  /**
   * Children counted but never kept: only as many are pushed as the budget can still walk, so
   * a huge (or sparse) array, Map, Set or object is not copied onto the stack whole.
   */
  let unwalked = 0;
  const stack: unknown[] = [value];
  const seen = new Set<object>();
  const room = () => Math.max(0, budget - visited - stack.length);
  while (stack.length > 0 && visited < budget) {
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
        } else if (current instanceof ArrayBuffer || current instanceof SharedArrayBuffer) {
          // No enumerable keys: walked as an object, a buffer of any size cost 32 bytes.
          bytes += 64 + current.byteLength;
        } else if (current instanceof Date) {
          bytes += 32;
        } else if (current instanceof Map || current instanceof Set) {
          bytes += 64;
          const perEntry = current instanceof Map ? 2 : 1;
          const taken = Math.min(current.size, Math.floor(room() / perEntry));
          let index = 0;
          for (const entry of current) {
            if (index >= taken) break;
            index += 1;
            if (current instanceof Map) stack.push(...(entry as [unknown, unknown]));
            else stack.push(entry);
          }
          unwalked += (current.size - taken) * perEntry;
        } else if (Array.isArray(current)) {
          bytes += 32 + current.length * 8;
          const taken = Math.min(current.length, room());
          for (let index = 0; index < taken; index += 1) stack.push(current[index]);
          unwalked += current.length - taken;
        } else {
          bytes += 32;
          const keys = Object.keys(current);
          const taken = Math.min(keys.length, room());
          for (let index = 0; index < keys.length; index += 1) {
            const key = keys[index]!;
            bytes += 16 + key.length * 2;
            if (index < taken) stack.push((current as Record<string, unknown>)[key]);
          }
          unwalked += keys.length - taken;
        }
        break;
      }
      default:
        bytes += 8;
    }
  }
  const left = stack.length + unwalked;
  // Extrapolate: assume the unwalked nodes cost the average of the walked ones.
  return left === 0 ? bytes : Math.ceil(bytes + (bytes / visited) * left);
}
