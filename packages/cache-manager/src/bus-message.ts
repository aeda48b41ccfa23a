/** A message on the invalidation bus. */
export interface BusMessage {
  /** Origin instance id (instances ignore their own messages). */
  o: string;
  /**
   * `set`/`del`: keys changed; `tag`: tags invalidated; `clear`: a key prefix cleared; `rel`:
   * lease released; `exp`/`exptag`: keys, or the keys of tags, marked stale (`expire`). A kind
   * an instance does not know (a newer release's) is ignored, so kinds can be added safely.
   */
  t: 'set' | 'del' | 'tag' | 'clear' | 'rel' | 'exp' | 'exptag';
  /** Keys, tags or the prefix, depending on `t`. */
  k: string[];
  /**
   * `rel` only: the keys of `k` whose holder released the lease because its factory failed
   * (waiters with a value in grace serve it). Absent when none did; older releases ignore it
   * and wake for every key, as before.
   */
  f?: string[];
  /**
   * `set` only, since the release that added it: per key of `k`, the id of the write whose value
   * L2 now holds (`CacheEntry.writeId`), null when unknown. An instance whose read of the key
   * was in flight keeps what it read if it is that value (see `FillGuard`). Absent from the
   * messages of older releases, which ignore it: their messages make a read in flight read
   * again, as before.
   */
  v?: (number | null)[];
  /** Send time (ms since epoch), for the invalidation latency measurement. */
  at: number;
}
