import {
  type Clock,
  ClosedError,
  type GaugeMetric,
  type HistogramMetric,
  type Logger,
  maxTimerMs,
  startDeadline,
} from '@noa/core';
import { z } from 'zod';
import { AcquireError, type AcquireFailure } from './errors.js';
import type { CheckInput } from './limiter.js';
import type { RateLimitResult } from './result.js';

/** What the queue reads of a signal: `aborted`, `reason`, and its abort event. */
function isAbortSignalLike(value: unknown): value is AbortSignal {
  if (typeof value !== 'object' || value === null) return false;
  const signal = value as Partial<Record<'aborted' | 'addEventListener' | 'removeEventListener', unknown>>;
  return (
    typeof signal.aborted === 'boolean' &&
    typeof signal.addEventListener === 'function' &&
    typeof signal.removeEventListener === 'function'
  );
}

/** Options of `limiter.acquire()`. */
export const acquireOptionsSchema = z
  .object({
    /**
     * Longest the caller waits for an admission; it is then rejected with `reason: 'timeout'`.
     * At most 2³¹ - 1 (about 24.8 days): Node fires a longer timer at once.
     */
    timeoutMs: z.number().int().positive().max(maxTimerMs).default(10_000),
    /**
     * Stops waiting at once (rejected with `reason: 'aborted'`) and leaves the queue. Taken by its
     * shape, as Node's own APIs take one: a polyfilled signal or one of another realm (jsdom's) is
     * not an instance of this realm's AbortSignal.
     */
    signal: z
      .custom<AbortSignal>(
        isAbortSignalLike,
        'an AbortSignal (aborted, addEventListener, removeEventListener)',
      )
      .optional(),
    /** Most callers waiting for one key in this process; one more is rejected with `queue-full`. */
    maxQueue: z.number().int().positive().default(1_000),
  })
  .strict();

/** Options of `limiter.acquire()` as written by users. */
export type AcquireOptions = z.input<typeof acquireOptionsSchema>;
/** Parsed options of `limiter.acquire()`. */
export type ParsedAcquireOptions = z.infer<typeof acquireOptionsSchema>;

/** The result label of `noa_rate_limiter_acquire_wait_seconds`. */
export type AcquireResultLabel = 'acquired' | 'closed' | AcquireFailure;

/** What the queue needs from the limiter. */
export interface AcquireQueueDependencies {
  /** One check of the request (counted when allowed). */
  check(input: CheckInput | string): Promise<RateLimitResult>;
  /** Gives back the points of an admission nobody waits for any more (best effort). */
  refund(input: CheckInput | string, points: number): Promise<unknown>;
  clock: Clock;
  logger: Logger;
  waiters: GaugeMetric;
  waits: HistogramMetric<'result'>;
}

interface Waiter {
  input: CheckInput | string;
  key: string;
  cost: number;
  startedAt: number;
  deadline: number;
  resolve(result: RateLimitResult): void;
  reject(error: Error): void;
  /** Cancels its pending timer: the acquire's timeout, then its admission's delay. */
  cancelTimer: (() => void) | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
  /** Admitted with a delay (queueing leaky bucket) that it is waiting out: its points are taken. */
  admitted: boolean;
}

interface KeyQueue {
  queueKey: string;
  /** In arrival order; only the first one's request is sent to the store. */
  waiters: Waiter[];
  /** The waiter whose check is in flight (it may have left the queue meanwhile). */
  checking: Waiter | undefined;
  /** The head's next check, after the last refusal's retry time. */
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the head may be admitted at the earliest (clock time), from the last refusal. */
  nextCheckAt: number;
  /** The last refusal, whose outcome and retry time explain a rejection. */
  lastRefusal: RateLimitResult | undefined;
  /** The key changed while a check was in flight: a refusal it brings may be stale. */
  changed: boolean;
}

/**
 * The waiters of `limiter.acquire()`, one FIFO queue per key (rule namespace + key). Only the
 * head's request goes to the store, and only when the last refusal's `retryAfterMs` has passed
 * (no polling), so N waiters cost one store call per retry, not N. A waiter leaves at its
 * deadline, on abort, or as soon as the last refusal shows that it could not be admitted before
 * its deadline (those ahead of it come first). Timers are cleared when their waiter settles;
 * they are not unref'd: the caller awaits them, and a script with nothing else to do must not
 * exit under its `await limiter.acquire()` (Node ends it with the await unsettled).
 */
export class AcquireQueue {
  readonly #queues = new Map<string, KeyQueue>();
  /** Admitted waiters waiting out their `delayMs` (out of their queue, which has moved on). */
  readonly #delayed = new Set<Waiter>();
  readonly #deps: AcquireQueueDependencies;
  #closed = false;

  constructor(dependencies: AcquireQueueDependencies) {
    this.#deps = dependencies;
  }

  /** Keys that have waiters (or a check in flight for one): 0 when nobody waits. */
  get keys(): number {
    return this.#queues.size;
  }

  /** Waits until `input` is admitted (see `limiter.acquire`); `queueKey` names its queue. */
  acquire(
    queueKey: string,
    input: CheckInput | string,
    key: string,
    cost: number,
    options: ParsedAcquireOptions,
  ): Promise<RateLimitResult> {
    if (this.#closed) return Promise.reject(new ClosedError('RateLimiter'));
    const { signal, timeoutMs, maxQueue } = options;
    const now = this.#deps.clock.now();
    if (signal?.aborted) return this.#refuse(key, 'aborted', 0, { cause: signal.reason });
    let queue = this.#queues.get(queueKey);
    const deadline = now + timeoutMs;
    if (queue !== undefined) {
      // From now to the head's next check: the soonest this caller could be judged. The refusal's
      // own retryAfterMs counts from the refusal, which may be long past (a 60 s wait told to a
      // caller arriving 50 s into it).
      const untilNextCheck = queue.lastRefusal === undefined ? 0 : Math.max(0, queue.nextCheckAt - now);
      if (queue.waiters.length >= maxQueue) return this.#refuse(key, 'queue-full', untilNextCheck);
      // Those ahead come first, so a waiter whose deadline is before the head's next chance cannot
      // be admitted: it is told at once instead of after waiting for nothing.
      if (queue.lastRefusal !== undefined && queue.nextCheckAt > deadline)
        return this.#refuse(key, refusalReason(queue.lastRefusal), untilNextCheck);
    }
    return new Promise<RateLimitResult>((resolve, reject) => {
      const waiter: Waiter = {
        input,
        key,
        cost,
        startedAt: now,
        deadline,
        resolve,
        reject,
        cancelTimer: undefined,
        signal,
        onAbort: undefined,
        settled: false,
        admitted: false,
      };
      if (queue === undefined) {
        queue = {
          queueKey,
          waiters: [],
          checking: undefined,
          retryTimer: undefined,
          nextCheckAt: now,
          lastRefusal: undefined,
          changed: false,
        };
        this.#queues.set(queueKey, queue);
      }
      const owner = queue;
      queue.waiters.push(waiter);
      this.#deps.waiters.inc();
      // Judged after the replies already in are read: a head admitted in time by a check whose
      // reply a busy process had not read yet must not time out (see core's startDeadline).
      waiter.cancelTimer = startDeadline(timeoutMs, () => this.#leave(owner, waiter, 'timeout'));
      if (signal !== undefined) {
        waiter.onAbort = () => this.#leave(owner, waiter, 'aborted', signal.reason);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      if (queue.waiters.length === 1 && queue.checking === undefined && queue.retryTimer === undefined)
        this.#checkHead(queue);
    });
  }

  /**
   * The key's state changed outside the queue (reset, unblock, refund, block, penalize): the last
   * refusal no longer tells when the head can pass, so the head checks again now rather than
   * sleeping out the old retry time (a lifted block of minutes), and newcomers are no longer
   * judged by it. A check in flight is repeated once if it comes back refused.
   */
  wake(queueKey: string): void {
    const queue = this.#queues.get(queueKey);
    if (queue === undefined) return;
    queue.lastRefusal = undefined;
    queue.nextCheckAt = this.#deps.clock.now();
    if (queue.checking !== undefined) {
      queue.changed = true;
      return;
    }
    if (queue.retryTimer !== undefined) clearTimeout(queue.retryTimer);
    this.#checkHead(queue);
  }

  /** {@link wake} for every key with waiters (the limiter's `resetAll()`). */
  wakeAll(): void {
    for (const queueKey of [...this.#queues.keys()]) this.wake(queueKey);
  }

  /**
   * Rejects every waiter with `ClosedError` (but see {@link #endOnClose}) and clears every timer;
   * the slots of callers waiting out a delay, and admissions still in flight, are given back (the
   * limiter lets that refund reach a remote store after its close).
   */
  close(): void {
    this.#closed = true;
    for (const queue of this.#queues.values()) {
      if (queue.retryTimer !== undefined) clearTimeout(queue.retryTimer);
      for (const waiter of queue.waiters) this.#endOnClose(waiter, queue.lastRefusal);
      queue.waiters.length = 0;
    }
    this.#queues.clear();
    for (const waiter of this.#delayed) {
      this.#settle(waiter, 'closed', () => waiter.reject(new ClosedError('RateLimiter')));
      this.#giveBack(waiter);
    }
    this.#delayed.clear();
  }

  /**
   * Ends a waiter on close: with its own end when that came first, else with `ClosedError`. Its
   * deadline may have passed by the clock with its timer not run yet (a busy process runs due
   * timers late, and judges them after the I/O then in): it gets `timeout`, as it would have a
   * moment earlier, whether the head's check is in flight (a remote store) or answered.
   */
  #endOnClose(waiter: Waiter, lastRefusal: RateLimitResult | undefined): void {
    if (waiter.signal?.aborted === true) this.#fail(waiter, 'aborted', lastRefusal, waiter.signal.reason);
    else if (this.#deps.clock.now() >= waiter.deadline) this.#fail(waiter, 'timeout', lastRefusal);
    else this.#settle(waiter, 'closed', () => waiter.reject(new ClosedError('RateLimiter')));
  }

  #refuse(
    key: string,
    reason: AcquireFailure,
    retryAfterMs: number,
    options: { cause?: unknown } = {},
  ): Promise<never> {
    this.#deps.waits.observe({ result: reason }, 0);
    return Promise.reject(new AcquireError(key, reason, 0, retryAfterMs, options));
  }

  /** Sends the head's request to the store. */
  #checkHead(queue: KeyQueue): void {
    queue.retryTimer = undefined;
    const head = queue.waiters[0];
    if (head === undefined) {
      this.#dropIfIdle(queue);
      return;
    }
    queue.checking = head;
    this.#deps.check(head.input).then(
      (result) => this.#onResult(queue, head, result),
      (error: unknown) => {
        // check() rejects only on close or a bad input (validated before queueing): end this waiter.
        queue.checking = undefined;
        this.#remove(queue, head);
        if (error instanceof ClosedError) this.#endOnClose(head, queue.lastRefusal);
        else this.#settle(head, 'closed', () => head.reject(error as Error));
        this.#continue(queue);
      },
    );
  }

  #onResult(queue: KeyQueue, head: Waiter, result: RateLimitResult): void {
    queue.checking = undefined;
    const changed = queue.changed;
    queue.changed = false;
    if (this.#closed) {
      if (result.allowed) this.#giveBack(head);
      return;
    }
    if (result.allowed) {
      if (head.settled) this.#giveBack(head);
      else {
        this.#remove(queue, head);
        if (result.delayMs > 0) this.#delay(head, result);
        else this.#settle(head, 'acquired', () => head.resolve(result));
      }
      queue.lastRefusal = undefined;
      this.#continue(queue);
      return;
    }
    if (result.outcome === 'denied') {
      // The lists are applied before queueing; kept for a store that answers `denied` itself.
      this.#remove(queue, head);
      this.#fail(head, 'denied', result);
      this.#continue(queue);
      return;
    }
    if (changed) {
      // Answered before the key changed: ask again rather than act on it.
      this.#checkHead(queue);
      return;
    }
    const now = this.#deps.clock.now();
    // A refusal always carries a retry time; at least 1 ms keeps a zero from spinning.
    queue.nextCheckAt = now + Math.max(1, result.retryAfterMs);
    queue.lastRefusal = result;
    const reason = refusalReason(result);
    for (const waiter of [...queue.waiters])
      if (waiter.deadline < queue.nextCheckAt) {
        this.#remove(queue, waiter);
        this.#fail(waiter, reason, result);
      }
    if (this.#dropIfIdle(queue)) return;
    queue.retryTimer = setTimeout(() => this.#onRetryTimer(queue), queue.nextCheckAt - now);
  }

  /**
   * The head's retry time came by the timers. A Node timer is due at libuv's loop time of the turn
   * it was armed in plus its delay, so one armed late in a busy turn fires that much before the
   * retry time by the limiter's clock: checked then, it met the same refusal (counted, and a
   * store call unless the hot-key cache answered). What is left is waited out instead.
   */
  #onRetryTimer(queue: KeyQueue): void {
    const left = queue.nextCheckAt - this.#deps.clock.now();
    if (left > 0) queue.retryTimer = setTimeout(() => this.#onRetryTimer(queue), left);
    else this.#checkHead(queue);
  }

  /**
   * An admission to go after `delayMs` (queueing leaky bucket): the caller may go when acquire
   * resolves, so it resolves after the delay; a delay that ends past the deadline is refused at
   * once (`limited`) and its slot given back. The queue moves on meanwhile: the next head's
   * admission comes with the next delay.
   */
  #delay(waiter: Waiter, result: RateLimitResult): void {
    const now = this.#deps.clock.now();
    if (now + result.delayMs > waiter.deadline) {
      this.#fail(waiter, 'limited', { ...result, retryAfterMs: result.delayMs });
      this.#giveBack(waiter);
      return;
    }
    waiter.admitted = true;
    this.#delayed.add(waiter);
    waiter.cancelTimer?.();
    const timer = setTimeout(() => {
      this.#delayed.delete(waiter);
      this.#settle(waiter, 'acquired', () => waiter.resolve(result));
    }, result.delayMs);
    waiter.cancelTimer = () => clearTimeout(timer);
  }

  /** After an admission (or a waiter's end): the next head checks at once, or the queue goes. */
  #continue(queue: KeyQueue): void {
    if (this.#dropIfIdle(queue) || queue.checking !== undefined || queue.retryTimer !== undefined) return;
    this.#checkHead(queue);
  }

  /** Forgets `queue` when nobody waits and no check is in flight; true when it did. */
  #dropIfIdle(queue: KeyQueue): boolean {
    if (queue.waiters.length > 0 || queue.checking !== undefined) return false;
    if (queue.retryTimer !== undefined) clearTimeout(queue.retryTimer);
    queue.retryTimer = undefined;
    if (this.#queues.get(queue.queueKey) === queue) this.#queues.delete(queue.queueKey);
    return true;
  }

  /** A waiter leaves on its deadline or abort; its in-flight admission, if any, is given back. */
  #leave(queue: KeyQueue, waiter: Waiter, reason: 'timeout' | 'aborted', cause?: unknown): void {
    if (waiter.settled) return;
    if (waiter.admitted) {
      // Aborted during its delay: the slot it holds goes to those behind it.
      this.#delayed.delete(waiter);
      this.#fail(waiter, reason, undefined, cause);
      this.#giveBack(waiter);
      return;
    }
    const wasHead = queue.waiters[0] === waiter;
    this.#remove(queue, waiter);
    this.#fail(waiter, reason, queue.lastRefusal, cause);
    if (this.#dropIfIdle(queue)) return;
    // The queue's pace is the head's refusal, for the head's cost: a new head that needs fewer
    // points may pass sooner (a retry time grows with the cost), so it is asked now, and the
    // refusal no longer judges newcomers. One of the same cost or more keeps the pace.
    const next = queue.waiters[0];
    if (wasHead && next !== undefined && next.cost < waiter.cost) this.wake(queue.queueKey);
  }

  #remove(queue: KeyQueue, waiter: Waiter): void {
    const at = queue.waiters.indexOf(waiter);
    if (at >= 0) queue.waiters.splice(at, 1);
  }

  #fail(
    waiter: Waiter,
    reason: AcquireFailure,
    lastRefusal: RateLimitResult | undefined,
    cause?: unknown,
  ): void {
    this.#settle(waiter, reason, () => {
      const waitedMs = Math.max(0, this.#deps.clock.now() - waiter.startedAt);
      waiter.reject(
        new AcquireError(
          waiter.key,
          reason,
          waitedMs,
          lastRefusal?.retryAfterMs ?? 0,
          cause === undefined ? {} : { cause },
        ),
      );
    });
  }

  /** Ends `waiter` once: clears its timer and abort listener, records the wait, then `answer`s. */
  #settle(waiter: Waiter, result: AcquireResultLabel, answer: () => void): void {
    if (waiter.settled) return;
    waiter.settled = true;
    waiter.cancelTimer?.();
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    this.#deps.waiters.dec();
    this.#deps.waits.observe({ result }, Math.max(0, this.#deps.clock.now() - waiter.startedAt) / 1_000);
    answer();
  }

  /** An admission that arrived after its waiter left: its points go back (never awaited). */
  #giveBack(waiter: Waiter): void {
    if (waiter.cost === 0) return;
    this.#deps.refund(waiter.input, waiter.cost).catch((error: unknown) =>
      this.#deps.logger.debug('rate-limit acquire: refund of an unclaimed admission failed', {
        key: waiter.key,
        error: (error as Error)?.message,
      }),
    );
  }
}

/**
 * The rejection reason a refusal gives the waiters it cannot admit in time: a refusal by the fail
 * mode (the store unreachable) says so, so that callers can tell an outage from a real limit.
 */
function refusalReason(result: RateLimitResult): AcquireFailure {
  if (result.source === 'fallback' || result.source === 'fail-mode') return 'unavailable';
  return result.outcome === 'blocked' ? 'blocked' : result.outcome === 'denied' ? 'denied' : 'limited';
}
