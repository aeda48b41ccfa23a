import type { CacheEntry } from '../entry.js';
import type { L1Store } from './l1-store.js';

/**
 * The L1 of an L2-only cache (`l1: false`): holds nothing, so every read goes to Redis. What
 * acts on L1 (bus messages, deletes, expires, clears, a resync) then acts on nothing, unchanged;
 * the engine skips the work that only fills L1 (see `CacheEngine.l1Enabled`).
 */
export class NoL1Store implements L1Store {
  readonly policy = 'none';
  readonly size = 0;
  readonly bytes = 0;

  get(_key: string, _now: number): CacheEntry | undefined {
    return undefined;
  }

  peek(_key: string): CacheEntry | undefined {
    return undefined;
  }

  set(_key: string, _entry: CacheEntry, _bytes: number): void {}

  delete(_key: string): boolean {
    return false;
  }

  clear(): void {}

  keys(): IterableIterator<string> {
    return [][Symbol.iterator]();
  }

  hottest(_limit: number): string[] {
    return [];
  }
}
