import { LruPolicy } from './lru-policy.js';

/**
 * First in, first out: reads do not matter; the oldest insertion goes first. That is LRU
 * bookkeeping whose reads and overwrites do not move a key (`insert` only sees new keys).
 */
export class FifoPolicy extends LruPolicy {
  override readonly name: string = 'fifo';

  override touch(): void {}
}
