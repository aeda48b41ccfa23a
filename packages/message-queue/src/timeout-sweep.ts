/** What {@link TimeoutSweep} keeps on each entry (the entry itself is the list node: no allocation). */
export interface TimeoutEntry {
  /** When the entry expires, on the sweep's `now()` scale; set by `add`. */
  timeoutDeadline: number;
  timeoutPrevious: TimeoutEntry | undefined;
  timeoutNext: TimeoutEntry | undefined;
  /** The list holding the entry; undefined when it is in none. */
  timeoutList: TimeoutList | undefined;
}

/** Entries of one timeout length, oldest first: added in time order, so also in deadline order. */
interface TimeoutList {
  readonly timeoutMs: number;
  head: TimeoutEntry | undefined;
  tail: TimeoutEntry | undefined;
}

/** The timer functions the sweep uses (injected in tests). */
export interface SweepTimers {
  now(): number;
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const nodeTimers: SweepTimers = {
  now: () => performance.now(),
  set: (callback, ms) => setTimeout(callback, ms).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Per-entry timeouts on one timer: `add` and `remove` are O(1) list operations and allocate
 * nothing, instead of a `setTimeout` (a timer object and a closure) per entry. Entries of the
 * same timeout length expire in the order they were added, so each length is one list sorted
 * by deadline; the single timer is armed for the earliest head. An entry expires no earlier
 * than a `setTimeout` of the same length would have fired (up to the 1 ms resolution of Node
 * timers).
 */
export class TimeoutSweep<Entry extends TimeoutEntry> {
  readonly #onExpire: (entry: Entry) => void;
  readonly #timers: SweepTimers;
  readonly #lists = new Map<number, TimeoutList>();
  #timer: unknown;
  readonly #sweepNow = (): void => this.#sweep();
  /** The deadline the timer is armed for (Infinity when it is not). */
  #armedFor = Number.POSITIVE_INFINITY;

  constructor(onExpire: (entry: Entry) => void, timers: SweepTimers = nodeTimers) {
    this.#onExpire = onExpire;
    this.#timers = timers;
  }

  /** Entries waiting to expire. */
  get size(): number {
    let size = 0;
    for (const list of this.#lists.values()) {
      for (let entry = list.head; entry; entry = entry.timeoutNext) size += 1;
    }
    return size;
  }

  /** Expires `entry` after `timeoutMs` unless it is removed first. */
  add(entry: Entry, timeoutMs: number): void {
    this.remove(entry);
    let list = this.#lists.get(timeoutMs);
    if (!list) {
      list = { timeoutMs, head: undefined, tail: undefined };
      this.#lists.set(timeoutMs, list);
    }
    entry.timeoutDeadline = this.#timers.now() + timeoutMs;
    entry.timeoutList = list;
    entry.timeoutNext = undefined;
    entry.timeoutPrevious = list.tail;
    if (list.tail) list.tail.timeoutNext = entry;
    else list.head = entry;
    list.tail = entry;
    if (entry.timeoutDeadline < this.#armedFor) this.#arm(entry.timeoutDeadline);
  }

  /** Forgets an entry (no-op if it is not waiting). The timer is left as is: it re-arms when it fires. */
  remove(entry: Entry): void {
    const list = entry.timeoutList;
    if (!list) return;
    const { timeoutPrevious: previous, timeoutNext: next } = entry;
    if (previous) previous.timeoutNext = next;
    else list.head = next;
    if (next) next.timeoutPrevious = previous;
    else list.tail = previous;
    entry.timeoutList = undefined;
    entry.timeoutPrevious = undefined;
    entry.timeoutNext = undefined;
    if (!list.head) this.#lists.delete(list.timeoutMs);
  }

  /** Forgets every entry and stops the timer. */
  clear(): void {
    for (const list of this.#lists.values()) {
      let entry = list.head;
      while (entry) {
        const next = entry.timeoutNext;
        entry.timeoutList = undefined;
        entry.timeoutPrevious = undefined;
        entry.timeoutNext = undefined;
        entry = next;
      }
    }
    this.#lists.clear();
    this.#disarm();
  }

  #arm(deadline: number): void {
    this.#disarm();
    this.#armedFor = deadline;
    // Node fires a timer up to 1 ms early against performance.now(): round up, and `#sweep`
    // re-arms if an entry is still short of its deadline.
    const delay = Math.max(1, Math.ceil(deadline - this.#timers.now()));
    this.#timer = this.#timers.set(this.#sweepNow, delay);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#timers.clear(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
  }

  #sweep(): void {
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const now = this.#timers.now();
    const expired: Entry[] = [];
    for (const list of [...this.#lists.values()]) {
      while (list.head && list.head.timeoutDeadline <= now) {
        const entry = list.head as Entry;
        this.remove(entry);
        expired.push(entry);
      }
    }
    // Expire after unlinking them all: a callback may add or remove entries.
    for (const entry of expired) {
      try {
        this.#onExpire(entry);
      } catch (error) {
        // Reported like an exception in a timer callback, without losing the other expiries.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    let next = Number.POSITIVE_INFINITY;
    for (const list of this.#lists.values()) next = Math.min(next, list.head!.timeoutDeadline);
    if (next < this.#armedFor) this.#arm(next);
  }
}
