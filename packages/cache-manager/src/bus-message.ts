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
  /** Send time (ms since epoch), for the invalidation latency measurement. */
  at: number;
}
