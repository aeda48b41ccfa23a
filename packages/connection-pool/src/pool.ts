import {
  type Clock,
  childLogger,
  coarseMonotonicClock,
  type Logger,
  monotonicClock,
  parseOptions,
  silentLogger,
} from '@noa/core';
import {
  type AcquireOptions,
  acquireOptionsCheck,
  badOptions,
  type DrainOptions,
  drainOptionsSchema,
} from './call-options.js';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  AuthenticationFailedError,
  BackendUnavailableError,
  type ConnectionPoolError,
  DrainTimeoutError,
  DriverNotInstalledError,
  NotBorrowedError,
  PoolClosedError,
  QueueFullError,
} from './errors.js';
import { type PoolMetrics, poolMetrics } from './metrics.js';
import {
  type PoolOptions,
  poolOptionsSchema,
  type ResolvedPoolOptions,
  type ResourceFactory,
} from './pool-options.js';
import { redactOptions } from './redact.js';

export type { AcquireOptions };

/** A point-in-time view of the pool's occupancy. */
export interface PoolStats {
  /** Resources lent to callers. */
  active: number;
  /** Resources open and free. */
  idle: number;
  /** Callers queued for a resource. */
  waiting: number;
  /** Resources being opened right now. */
  pending: number;
  /** active + idle + pending (never above `max`). */
  size: number;
}

/** A resource that was lent and not returned, as reported by leak detection and `close()`. */
export interface LeakReport {
  pool: string;
  heldMs: number;
  /** Stack of the `acquire()` call, when leak detection is on. */
  acquireStack: string | undefined;
}

/** What `close()` found. */
export interface CloseReport {
  /** Resources still lent when the close timeout ran out (they were destroyed). */
  unreleased: LeakReport[];
}

const IDLE = 0;
const LENT = 1;
const BUSY = 2; // being validated or destroyed

interface Entry<T> {
  readonly resource: T;
  readonly createdAt: number;
  state: number;
  releasedAt: number;
  acquiredAt: number;
  /** Captured at acquire; V8 formats `.stack` only when read, so capture is cheap. */
  acquireSite: Error | undefined;
  leakReported: boolean;
  broken: boolean;
}

interface Waiter<T> {
  resolve: (resource: T) => void;
  reject: (error: unknown) => void;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
  /**
   * `performance.now()` deadline on the shared timer (monotonic: a wall clock stepped back must not
   * hold waiters past their timeout); 0 when the waiter has its own timer.
   */
  deadline: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** `performance.now()` at acquire, for acquire_duration_seconds (0 without metrics). */
  startedAt: number;
  site: Error | undefined;
}

const OPEN = 0;
const DRAINING = 1;
const CLOSED = 2;

/**
 * A generic resource pool: an idle stack (LIFO keeps few connections warm and lets the rest age
 * out), a FIFO queue of waiters served in arrival order, creation on demand up to `max`,
 * eviction down to `min`, validation, max lifetime, leak detection, fail-fast with backoff
 * while the backend is down, `drain()` and `close()`.
 *
 * The hot path (an idle resource is free and nobody waits) is a pop, a map lookup and a
 * resolved promise: no timers, no closures, no clock reads unless metrics, leak detection or
 * `maxLifetimeMs` (an expired idle resource is closed, not lent) are on.
 */
export class Pool<T> {
  /** Name used in errors, logs and metrics. */
  readonly name: string;
  /** The parsed options, defaults applied. */
  readonly options: ResolvedPoolOptions;
  readonly #factory: ResourceFactory<T>;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #metrics: PoolMetrics;
  readonly #entries = new Map<T, Entry<T>>();
  /**
   * Resources still lent when close() destroyed them: their borrowers may hand them back
   * afterwards (their query ended with the connection), which is not their mistake.
   */
  readonly #takenBack = new Set<T>();
  readonly #idle: Entry<T>[] = [];
  #waiters: (Waiter<T> | undefined)[] = [];
  #waiterHead = 0;
  #liveWaiters = 0;
  #active = 0;
  #pending = 0;
  /** Bumped by invalidateAll(): a create begun before it went to the old server. */
  #generation = 0;
  /** Idle resources being validated for waiters (validateOnBorrow), each meant for one of them. */
  #validating = 0;
  /** Given-back resources whose `reset` (see `release`) has not settled yet. */
  #resetting = 0;
  #state = OPEN;
  #failures = 0;
  #retryAt = 0;
  #lastError: unknown;
  /** What callers get for #lastError (see #createFailure), kept for `backendError`. */
  #lastFailure: ConnectionPoolError | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** Called once nothing is lent or queued any more (drain() and close() wait for that). */
  #drainListeners: (() => void)[] = [];
  #draining: Promise<void> | undefined;
  /** Bounds drain()'s wait; a close() takes over (its own wait and report) by clearing it. */
  #drainTimer: NodeJS.Timeout | undefined;
  #shutting: Promise<void> | undefined;
  readonly #fastPath: boolean;
  readonly #trackTime: boolean;
  /**
   * Stamps an acquire when neither metrics nor leak detection time it: the heldMs that close(),
   * drain() and leaks() report. The monotonic clock's coarse twin (one performance.now() per
   * event-loop turn and 16 reads at most), so the hot path stays cheap; an injected clock as it is.
   */
  readonly #lendClock: Clock;

  constructor(factory: ResourceFactory<T>, options: PoolOptions = {}) {
    this.options = parseOptions('connection pool', poolOptionsSchema, options);
    this.name = this.options.name;
    this.#factory = factory;
    this.#clock = this.options.clock ?? monotonicClock;
    this.#logger = childLogger(this.options.logger ?? silentLogger, {
      component: 'connection-pool',
      pool: this.name,
    });
    this.#metrics = poolMetrics(this.options.registry, this.name);
    this.#fastPath = !this.options.validateOnBorrow;
    this.#trackTime = this.#metrics.enabled || this.options.leakDetectionThresholdMs !== undefined;
    this.#lendClock = this.#clock === monotonicClock ? coarseMonotonicClock : this.#clock;
    this.#timer = setInterval(() => this.#maintain(), this.options.evictionIntervalMs);
    this.#timer.unref();
    this.#fill();
  }

  /** Current occupancy (cheap; for health endpoints and tests). */
  get stats(): PoolStats {
    const idle = this.#idle.length;
    return {
      active: this.#active,
      idle,
      waiting: this.#liveWaiters,
      pending: this.#pending,
      size: this.#size(),
    };
  }

  /** True while the last connect attempts failed and the pool is backing off. */
  get backendDown(): boolean {
    return this.#failures > 0;
  }

  /**
   * While `backendDown`, the error callers get: `BackendUnavailableError` (the server is not
   * reachable, the connect error as `cause`), `AuthenticationFailedError` (the server refused
   * the credentials) or `DriverNotInstalledError` (nothing was sent: the driver package is
   * missing). Undefined once a connect succeeds.
   */
  get backendError(): ConnectionPoolError | undefined {
    return this.#failures > 0 ? this.#lastFailure : undefined;
  }

  /**
   * Lends a resource: an idle one at once, else a new one (below `max`), else the caller
   * queues (FIFO) until one is released, the timeout passes or `signal` aborts.
   */
  acquire(options?: AcquireOptions): Promise<T> {
    if (options !== undefined) {
      const invalid = badOptions(acquireOptionsCheck, options);
      if (invalid !== undefined) return Promise.reject(invalid);
    }
    if (
      this.#fastPath &&
      this.#liveWaiters === 0 &&
      this.#idle.length > 0 &&
      this.#state === OPEN &&
      options?.signal?.aborted !== true
    ) {
      const entry = this.#idle.pop()!;
      if (!this.#expiredIdle(entry)) {
        this.#lend(entry, this.#metrics.enabled ? performance.now() : 0);
        return Promise.resolve(entry.resource);
      }
    }
    return this.#acquireSlow(options);
  }

  /**
   * Returns a resource to the pool; the oldest waiter gets it directly. With `reset` (work the
   * resource must finish before anyone else gets it: a `ROLLBACK`), the pool calls
   * `reset(resource)` and lends the resource to no one until its promise settles: resolved, it
   * goes back as above; rejected, it is closed (and a waiter gets a new one). `drain()` waits for
   * it; `close()` closes it at once. Without `reset`, nothing is awaited.
   */
  release(resource: T, reset?: (resource: T) => Promise<unknown>): void {
    const entry = this.#entries.get(resource);
    if (entry === undefined || entry.state !== LENT) {
      if (this.#takenBack.delete(resource)) return;
      throw new NotBorrowedError(this.name);
    }
    this.#active -= 1;
    if (this.#metrics.enabled) this.#metrics.active.dec();
    // One about to be closed anyway (broken, expired, pool closed) is not reset first.
    if (reset !== undefined && !entry.broken && this.#state !== CLOSED && !this.#expired(entry)) {
      this.#reset(entry, reset);
      return;
    }
    this.#putBack(entry);
  }

  /** A given-back resource: closed (broken, expired, pool closed), else to a waiter or idle. */
  #putBack(entry: Entry<T>): void {
    if (entry.broken || this.#state === CLOSED || this.#expired(entry)) {
      this.#destroyEntry(entry);
      this.#dispatch();
      if (this.#state === DRAINING) this.#checkDrained();
      return;
    }
    if (this.#liveWaiters > 0) {
      const waiter = this.#nextWaiter();
      if (waiter !== undefined) {
        this.#serve(waiter, entry);
        return;
      }
    }
    entry.state = IDLE;
    entry.releasedAt = this.#clock.now();
    this.#idle.push(entry);
    if (this.#metrics.enabled) this.#metrics.idle.inc();
    if (this.options.allowExitOnIdle) this.#factory.unref?.(entry.resource);
    if (this.#state === DRAINING) this.#checkDrained();
  }

  /**
   * Runs a given-back resource's `reset`, lending it to no one meanwhile (BUSY: neither lent nor
   * idle), then puts it back, or closes it when the reset failed. Counted in #resetting, so that
   * waiters wait for it rather than open a connection each, and a drain waits for it.
   */
  #reset(entry: Entry<T>, reset: (resource: T) => Promise<unknown>): void {
    entry.state = BUSY;
    this.#resetting += 1;
    let work: Promise<unknown>;
    try {
      work = reset(entry.resource);
    } catch (error) {
      work = Promise.reject(error);
    }
    work.then(
      () => this.#afterReset(entry, true),
      (error: unknown) => {
        this.#logger.warn('could not reset a connection given back: closing it', { error: String(error) });
        this.#afterReset(entry, false);
      },
    );
  }

  #afterReset(entry: Entry<T>, ok: boolean): void {
    this.#resetting -= 1;
    // close() took it meanwhile (and closed it).
    if (this.#entries.get(entry.resource) !== entry) return;
    if (ok) {
      this.#putBack(entry);
      return;
    }
    this.#metrics.errors.inc({ kind: 'reset' });
    this.#destroyEntry(entry);
    this.#dispatch();
    if (this.#state === DRAINING) this.#checkDrained();
  }

  /** Closes a lent resource instead of returning it (it failed); a waiter gets a new one. */
  destroy(resource: T): void {
    const entry = this.#entries.get(resource);
    if (entry === undefined || entry.state !== LENT) {
      if (this.#takenBack.delete(resource)) return;
      throw new NotBorrowedError(this.name);
    }
    this.#active -= 1;
    if (this.#metrics.enabled) this.#metrics.active.dec();
    this.#destroyEntry(entry);
    this.#dispatch();
    if (this.#state === DRAINING) this.#checkDrained();
  }

  /**
   * Marks a resource broken (its connection emitted an error): an idle one is closed now, a
   * lent one when it comes back.
   */
  invalidate(resource: T): void {
    const entry = this.#entries.get(resource);
    if (entry === undefined) return;
    entry.broken = true;
    if (entry.state === IDLE) {
      this.#removeIdle(entry);
      this.#destroyEntry(entry);
      this.#fill();
    }
  }

  /**
   * Marks every resource broken (after a failover to a new server): idle ones close now, lent
   * ones when they come back; new acquires open fresh connections at once. A create already
   * under way went to the old server: what it opens is closed, not lent, and its failure is not
   * counted against the new one; a waiter gets a connection opened afterwards.
   */
  invalidateAll(): void {
    this.#generation += 1;
    for (const entry of this.#entries.values()) entry.broken = true;
    for (const entry of this.#idle.splice(0)) {
      if (this.#metrics.enabled) this.#metrics.idle.dec();
      this.#destroyEntry(entry);
    }
    this.#failures = 0;
    this.#retryAt = 0;
    this.#fill();
    this.#dispatch();
  }

  /** Acquires, runs `fn`, and releases (or destroys when `fn` marks it broken via `invalidate`). */
  async use<R>(fn: (resource: T) => Promise<R>, options?: AcquireOptions): Promise<R> {
    const resource = await this.acquire(options);
    try {
      return await fn(resource);
    } finally {
      this.release(resource);
    }
  }

  /**
   * Stops lending to new callers (they get `PoolClosedError`), serves the queued ones, waits
   * until every resource is back, then closes them all. The wait is bounded by `timeoutMs`
   * (default `closeTimeoutMs`): resources still lent then (leaks) are closed as `close()` closes
   * them, and the drain rejects with `DrainTimeoutError` listing them. Every call shares the
   * first call's drain (and its timeout); a `close()` meanwhile takes over, and the drain
   * resolves when it is done.
   */
  drain(options?: DrainOptions): Promise<void> {
    if (this.#draining === undefined) {
      let timeoutMs = this.options.closeTimeoutMs;
      if (options !== undefined) {
        try {
          timeoutMs = parseOptions('drain', drainOptionsSchema, options).timeoutMs ?? timeoutMs;
        } catch (error) {
          return Promise.reject(error);
        }
      }
      this.#draining = this.#drain(timeoutMs);
    }
    return this.#draining;
  }

  async #drain(timeoutMs: number): Promise<void> {
    if (this.#state === OPEN) this.#state = DRAINING;
    if (this.#state === DRAINING) {
      // A close() meanwhile settles this too: its shutdown calls the listeners.
      const drained = await new Promise<boolean>((resolve) => {
        // Not unref'd: the caller awaits it, and an unbounded wait on no timer at all let an
        // ESM program exit (code 13) mid-shutdown.
        this.#drainTimer = setTimeout(() => resolve(false), timeoutMs);
        this.#drainListeners.push(() => {
          clearTimeout(this.#drainTimer);
          resolve(true);
        });
        this.#checkDrained();
      });
      if (!drained) {
        const unreleased = this.#reportUnreleased('drain');
        await this.#shutdown();
        if (unreleased.length > 0) throw new DrainTimeoutError(this.name, timeoutMs, unreleased);
      }
    }
    await this.#shutdown();
  }

  /**
   * Rejects queued callers with `PoolClosedError`, closes idle resources, waits up to
   * `closeTimeoutMs` for lent ones, then aborts (factory `abort`) and destroys those too and
   * reports them (with the stack of their acquire when leak detection is on).
   */
  async close(): Promise<CloseReport> {
    if (this.#state === CLOSED) {
      await this.#shutdown();
      return { unreleased: [] };
    }
    this.#state = DRAINING;
    // A drain() in progress now ends with this close (which reports what is still lent).
    clearTimeout(this.#drainTimer);
    this.#rejectAllWaiters(new PoolClosedError(this.name));
    if (this.#active > 0 && this.options.closeTimeoutMs > 0) {
      await new Promise<void>((resolve) => {
        // Not unref'd: the caller awaits it (nor are the acquire timers below).
        const timer = setTimeout(resolve, this.options.closeTimeoutMs);
        this.#drainListeners.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.#checkDrained();
      });
    }
    const unreleased = this.#reportUnreleased('close');
    await this.#shutdown();
    return { unreleased };
  }

  /**
   * Logs and counts the resources still lent as leaks. Call it right before `#shutdown()`, which
   * takes them back in the same tick, so that a concurrent close() or drain() cannot report
   * them again.
   */
  #reportUnreleased(by: 'close' | 'drain'): LeakReport[] {
    const now = this.#clock.now();
    const unreleased: LeakReport[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.state !== LENT) continue;
      const leak = {
        pool: this.name,
        heldMs: now - entry.acquiredAt,
        acquireStack: entry.acquireSite?.stack,
      };
      unreleased.push(leak);
      this.#logger.warn(`connection never released before ${by}`, { ...leak });
      // One held past the threshold was counted when it was reported.
      if (!entry.leakReported) this.#metrics.leaks.inc();
    }
    return unreleased;
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * What `JSON.stringify` shows: the name and the options with passwords masked and the
   * registry, logger and clock by class name only.
   */
  toJSON(): { name: string; options: unknown } {
    return { name: this.name, options: redactOptions(this.options) };
  }

  /** What `console.log` / `util.inspect` show: the same as `toJSON()`. */
  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return this.toJSON();
  }

  // ---- internals ----

  #acquireSlow(options: AcquireOptions | undefined): Promise<T> {
    if (this.#state !== OPEN) return Promise.reject(new PoolClosedError(this.name));
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(new AcquireAbortedError(this.name, signal.reason));
    // A high-resolution start for acquire_duration_seconds (buckets from 50 µs): the clock
    // option's milliseconds would put every fast acquire at 0 and every other at whole ms.
    const startedAt = this.#metrics.enabled ? performance.now() : 0;
    // With validateOnBorrow an idle resource is checked first: the caller queues like any other
    // (its timeout and signal hold while the check runs, and it keeps its place) and #dispatch
    // checks an idle resource for it.
    if (this.#failures > 0 && this.#size() === 0 && this.#clock.now() < this.#retryAt) {
      this.#metrics.errors.inc({ kind: 'unavailable' });
      return Promise.reject(this.#createFailure(this.#lastError));
    }
    const maxWaiting = this.options.maxWaiting;
    if (maxWaiting !== undefined && this.#waitingForRelease() >= maxWaiting) {
      this.#metrics.errors.inc({ kind: 'queue_full' });
      return Promise.reject(new QueueFullError(this.name, maxWaiting));
    }
    return new Promise<T>((resolve, reject) => {
      const ownTimeout = options?.timeoutMs;
      const waiter: Waiter<T> = {
        resolve,
        reject,
        settled: false,
        timer: undefined,
        deadline: ownTimeout === undefined ? performance.now() + this.options.acquireTimeoutMs : 0,
        signal,
        onAbort: undefined,
        startedAt,
        site: this.options.leakDetectionThresholdMs === undefined ? undefined : new Error('acquired here'),
      };
      if (ownTimeout !== undefined) {
        waiter.timer = setTimeout(() => {
          this.#timeOut(waiter, ownTimeout);
          this.#dropSettledWaiters();
        }, ownTimeout);
      } else if (this.#deadlineTimer === undefined) {
        this.#armDeadlineTimer(this.options.acquireTimeoutMs);
      }
      if (signal !== undefined) {
        waiter.onAbort = () => {
          this.#fail(waiter, new AcquireAbortedError(this.name, signal.reason));
          this.#dropSettledWaiters();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
      this.#liveWaiters += 1;
      if (this.#metrics.enabled) this.#metrics.waiting.inc();
      this.#dispatch();
    });
  }

  #timeOut(waiter: Waiter<T>, timeoutMs: number): void {
    if (waiter.settled) return;
    this.#metrics.timeouts.inc();
    this.#fail(waiter, new AcquireTimeoutError(this.name, timeoutMs));
  }

  /**
   * One timer for every waiter on the default timeout: they queue in deadline order, so the
   * timer fails the expired ones at the head and re-arms for the next. A timer per waiter
   * costs more than the rest of the slow path together.
   */
  #armDeadlineTimer(delayMs: number): void {
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      const now = performance.now();
      for (let index = this.#waiterHead; index < this.#waiters.length; index += 1) {
        const waiter = this.#waiters[index];
        if (waiter === undefined || waiter.settled || waiter.deadline === 0) continue;
        if (waiter.deadline > now) {
          this.#armDeadlineTimer(waiter.deadline - now);
          break;
        }
        this.#timeOut(waiter, this.options.acquireTimeoutMs);
      }
      this.#dropSettledWaiters();
    }, delayMs);
  }

  /**
   * Forgets queued callers who stopped waiting (timed out, aborted) before their turn. They stay
   * in the queue until a release reaches them, and while every resource is held (a slow server, a
   * leak) none does: each kept its closures, signal and stack, and the deadline timer scanned them
   * all at every run (generic-pool#108). The head is trimmed at once; settled ones further back
   * are dropped once they outnumber the live ones, so the copy costs O(1) per caller. Never call
   * it inside a loop over the queue: it replaces the array.
   */
  #dropSettledWaiters(): void {
    while (this.#waiterHead < this.#waiters.length) {
      const waiter = this.#waiters[this.#waiterHead];
      if (waiter !== undefined && !waiter.settled) break;
      this.#waiters[this.#waiterHead] = undefined;
      this.#waiterHead += 1;
    }
    const queued = this.#waiters.length - this.#waiterHead;
    if (queued === 0) {
      this.#waiters = [];
      this.#waiterHead = 0;
      return;
    }
    if (queued <= 1024 || this.#liveWaiters * 2 >= queued) {
      this.#compactWaiters();
      return;
    }
    const live: Waiter<T>[] = [];
    for (let index = this.#waiterHead; index < this.#waiters.length; index += 1) {
      const waiter = this.#waiters[index];
      if (waiter !== undefined && !waiter.settled) live.push(waiter);
    }
    this.#waiters = live;
    this.#waiterHead = 0;
  }

  /**
   * Queued callers beyond those the pool is about to serve (an idle resource, one being opened,
   * validated or reset, room to open one): those who wait for a release, as `maxWaiting` counts.
   */
  #waitingForRelease(): number {
    const coming =
      this.#idle.length +
      this.#pending +
      this.#validating +
      this.#resetting +
      (this.options.max - this.#size());
    return this.#liveWaiters - coming;
  }

  #size(): number {
    return this.#entries.size + this.#pending;
  }

  /** `startedAt`: `performance.now()` when the acquire began (0 without metrics). */
  #lend(entry: Entry<T>, startedAt: number, fromFastPath = true, site?: Error): void {
    entry.state = LENT;
    this.#active += 1;
    if (this.options.allowExitOnIdle) this.#factory.ref?.(entry.resource);
    if (this.#trackTime) {
      const now = this.#clock.now();
      entry.acquiredAt = now;
      entry.leakReported = false;
      if (this.options.leakDetectionThresholdMs !== undefined) {
        entry.acquireSite = site ?? new Error('acquired here');
      }
      if (this.#metrics.enabled) {
        this.#metrics.acquireSeconds.observe((performance.now() - startedAt) / 1_000);
        this.#metrics.active.inc();
        if (fromFastPath) this.#metrics.idle.dec();
      }
    } else {
      entry.acquiredAt = this.#lendClock.now();
    }
  }

  #settle(waiter: Waiter<T>): boolean {
    if (waiter.settled) return false;
    waiter.settled = true;
    this.#liveWaiters -= 1;
    // Nobody left to time out: the shared timer would otherwise hold the process for up to
    // acquireTimeoutMs after the last wait (it is not unref'd while someone awaits).
    if (this.#liveWaiters === 0 && this.#deadlineTimer !== undefined) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
    if (this.#metrics.enabled) this.#metrics.waiting.dec();
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    return true;
  }

  #fail(waiter: Waiter<T>, error: unknown): void {
    if (this.#settle(waiter)) waiter.reject(error);
  }

  #serve(waiter: Waiter<T>, entry: Entry<T>): void {
    this.#settle(waiter);
    this.#lend(entry, waiter.startedAt, false, waiter.site);
    waiter.resolve(entry.resource);
  }

  /** Pops the oldest waiter still waiting (skipping timed-out or aborted ones). */
  #nextWaiter(): Waiter<T> | undefined {
    while (this.#waiterHead < this.#waiters.length) {
      const waiter = this.#waiters[this.#waiterHead];
      this.#waiters[this.#waiterHead] = undefined;
      this.#waiterHead += 1;
      if (waiter !== undefined && !waiter.settled) {
        this.#compactWaiters();
        return waiter;
      }
    }
    this.#waiters = [];
    this.#waiterHead = 0;
    return undefined;
  }

  #compactWaiters(): void {
    if (this.#waiterHead > 1024 && this.#waiterHead * 2 > this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#waiterHead);
      this.#waiterHead = 0;
    }
  }

  #rejectAllWaiters(error: unknown): void {
    for (let waiter = this.#nextWaiter(); waiter !== undefined; waiter = this.#nextWaiter()) {
      this.#fail(waiter, error);
    }
  }

  /** Serves queued callers from idle resources, then opens new ones for the rest (up to max). */
  #dispatch(): void {
    while (this.#liveWaiters > this.#validating && this.#idle.length > 0 && this.#state !== CLOSED) {
      const entry = this.#idle.pop()!;
      if (this.#expiredIdle(entry)) continue;
      if (this.#metrics.enabled) this.#metrics.idle.dec();
      if (this.options.validateOnBorrow) {
        this.#validating += 1;
        void this.#validate(entry).then((ok) => {
          this.#validating -= 1;
          if (ok && this.#stillUsable(entry)) this.#handOut(entry);
          this.#dispatch();
        });
        continue;
      }
      this.#handOut(entry);
    }
    if (this.#state === CLOSED) return;
    if (this.#failures > 0 && this.#clock.now() < this.#retryAt) {
      this.#scheduleRetry();
      return;
    }
    // A resource being reset is back for the next waiter in a moment: open none for that one.
    while (
      this.#liveWaiters > this.#pending + this.#validating + this.#resetting &&
      this.#size() < this.options.max
    ) {
      this.#create();
    }
  }

  /** Gives a free resource to the oldest waiter, or puts it back on the idle stack. */
  #handOut(entry: Entry<T>): void {
    const waiter = this.#liveWaiters > 0 ? this.#nextWaiter() : undefined;
    if (waiter !== undefined) this.#serve(waiter, entry);
    else {
      this.#returnToIdle(entry);
      if (this.#state === DRAINING) this.#checkDrained();
    }
  }

  #returnToIdle(entry: Entry<T>): void {
    entry.state = IDLE;
    entry.releasedAt = this.#clock.now();
    this.#idle.push(entry);
    if (this.#metrics.enabled) this.#metrics.idle.inc();
    if (this.options.allowExitOnIdle) this.#factory.unref?.(entry.resource);
  }

  #create(): void {
    this.#pending += 1;
    const generation = this.#generation;
    promised(() => this.#factory.create()).then(
      (resource) => {
        this.#pending -= 1;
        if (generation !== this.#generation) {
          // Begun before invalidateAll(): opened to the old server. Closed, and one opened anew
          // for whoever waits.
          this.#metrics.created.inc();
          this.#metrics.destroyed.inc();
          void this.#closeResource(resource, false);
          this.#dispatch();
          return;
        }
        this.#failures = 0;
        this.#lastError = undefined;
        this.#lastFailure = undefined;
        const now = this.#clock.now();
        const entry: Entry<T> = {
          resource,
          createdAt: now,
          state: BUSY,
          releasedAt: now,
          acquiredAt: 0,
          acquireSite: undefined,
          leakReported: false,
          broken: false,
        };
        this.#entries.set(resource, entry);
        this.#metrics.created.inc();
        if (this.#state === CLOSED) {
          this.#destroyEntry(entry);
          return;
        }
        this.#handOut(entry);
        this.#dispatch();
      },
      (error: unknown) => {
        this.#pending -= 1;
        // Begun before invalidateAll(): says nothing of the server it switched to.
        if (generation !== this.#generation) {
          this.#dispatch();
          return;
        }
        this.#failures += 1;
        this.#lastError = error;
        this.#lastFailure = this.#createFailure(error);
        const backoff = Math.min(
          this.options.maxBackoffMs,
          this.options.initialBackoffMs * 2 ** Math.min(this.#failures - 1, 20),
        );
        this.#retryAt = this.#clock.now() + backoff;
        this.#metrics.errors.inc({ kind: 'create' });
        this.#logger.warn('could not open a connection', { error: String(error), failures: this.#failures });
        // Fail fast: with nothing open, nobody queued can be served until the backend is back.
        if (this.#entries.size === 0 && this.#pending === 0) {
          this.#rejectAllWaiters(this.#createFailure(error));
        } else {
          const waiter = this.#nextWaiter();
          if (waiter !== undefined) this.#fail(waiter, this.#createFailure(error));
        }
        this.#scheduleRetry();
      },
    );
  }

  /**
   * What callers get for a failed create: `BackendUnavailableError`, unless the driver package
   * is missing, which no wait or failover can fix and whose error says what to install, or the
   * factory already typed it (`AuthenticationFailedError`: the credentials were refused).
   */
  #createFailure(error: unknown): ConnectionPoolError {
    if (error instanceof DriverNotInstalledError || error instanceof AuthenticationFailedError) return error;
    return new BackendUnavailableError(this.name, { cause: error });
  }

  /** While the backend is down, tries again after the backoff delay to restore `min` and serve waiters. */
  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#state === CLOSED) return;
    const delay = Math.max(0, this.#retryAt - this.#clock.now());
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#retryAt = 0;
      this.#fill();
      this.#dispatch();
    }, delay);
    this.#retryTimer.unref();
  }

  /** Opens resources until `min` (counting those being opened). */
  #fill(): void {
    if (this.#state !== OPEN) return;
    if (this.#failures > 0 && this.#clock.now() < this.#retryAt) return;
    // After a failure, probe with one connect instead of a burst.
    const target = this.#failures > 0 ? Math.min(this.options.min, this.#size() + 1) : this.options.min;
    while (this.#size() < target) this.#create();
  }

  /**
   * For an entry just popped off the idle stack: past `maxLifetimeMs`, it is closed (and counted
   * off the idle gauge) instead of lent, as pg.Pool's `maxLifetimeSeconds` closes an idle client
   * when it expires; without it the next eviction run (up to `evictionIntervalMs` later) was the
   * first to notice. No clock read without `maxLifetimeMs`.
   */
  #expiredIdle(entry: Entry<T>): boolean {
    if (this.options.maxLifetimeMs === undefined || !this.#expired(entry)) return false;
    if (this.#metrics.enabled) this.#metrics.idle.dec();
    this.#destroyEntry(entry);
    return true;
  }

  #expired(entry: Entry<T>): boolean {
    const lifetime = this.options.maxLifetimeMs;
    return lifetime !== undefined && this.#clock.now() - entry.createdAt >= lifetime;
  }

  /**
   * Runs the factory's `validate`. One that does not answer within `acquireTimeoutMs` (a frozen
   * server) counts as failed and its resource is aborted: it would otherwise hold a slot, and
   * its waiter's place, for ever.
   */
  async #validate(entry: Entry<T>): Promise<boolean> {
    entry.state = BUSY;
    if (this.options.allowExitOnIdle) this.#factory.ref?.(entry.resource);
    const factory = this.#factory;
    let ok = factory.validate === undefined;
    let timedOut = false;
    if (factory.validate !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      try {
        ok = await Promise.race([
          // Called on the factory: a class-based one's validate uses `this` (as create does).
          factory.validate(entry.resource),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => {
              timedOut = true;
              resolve(false);
            }, this.options.acquireTimeoutMs);
            timer.unref();
          }),
        ]);
      } catch {
        ok = false;
      } finally {
        clearTimeout(timer);
      }
    }
    // close() took it meanwhile: nothing left to destroy.
    if (!ok && this.#entries.get(entry.resource) === entry) {
      this.#metrics.errors.inc({ kind: 'validate' });
      if (timedOut) this.#abort(entry.resource);
      this.#destroyEntry(entry);
    }
    return ok;
  }

  /**
   * After a validate that answered true: whether the resource may be lent or go idle. Not when
   * close() took it meanwhile (it is closed: put back, it sat on a closed pool's idle stack), nor
   * when it was reported broken meanwhile (`invalidate`, its connection's 'error': the ping may
   * still have answered), which closes it instead.
   */
  #stillUsable(entry: Entry<T>): boolean {
    if (this.#entries.get(entry.resource) !== entry) return false;
    if (!entry.broken) return true;
    this.#destroyEntry(entry);
    return false;
  }

  /** The factory's `abort`; one that throws is logged, and the resource still destroyed after it. */
  #abort(resource: T): void {
    try {
      this.#factory.abort?.(resource);
    } catch (error) {
      this.#logger.warn('error while aborting a connection', { error: String(error) });
    }
  }

  #destroyEntry(entry: Entry<T>): void {
    entry.state = BUSY;
    this.#entries.delete(entry.resource);
    this.#metrics.destroyed.inc();
    void this.#closeResource(entry.resource, false);
  }

  /**
   * The factory's `destroy`, bounded by `destroyTimeoutMs`: one that has not settled by then is
   * abandoned (the resource aborted, logged, counted as `destroy_timeout`), so that a goodbye a
   * server never answers cannot hold `close()` for ever (coopernurse/node-pool#288). Resolves
   * either way. The timer holds the process only for `close()`, whose caller awaits it.
   */
  #closeResource(resource: T, forClose: boolean): Promise<void> {
    const timeoutMs = this.options.destroyTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const abandoned = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#metrics.errors.inc({ kind: 'destroy_timeout' });
        this.#logger.warn('a connection did not close within destroyTimeoutMs: abandoned', { timeoutMs });
        this.#abort(resource);
        resolve();
      }, timeoutMs);
      if (!forClose) timer.unref();
    });
    const destroyed = promised(() => this.#factory.destroy(resource)).then(
      () => clearTimeout(timer),
      (error: unknown) => {
        clearTimeout(timer);
        this.#logger.warn('error while closing a connection', { error: String(error) });
      },
    );
    return Promise.race([destroyed, abandoned]);
  }

  #removeIdle(entry: Entry<T>): void {
    const index = this.#idle.indexOf(entry);
    if (index >= 0) {
      this.#idle.splice(index, 1);
      if (this.#metrics.enabled) this.#metrics.idle.dec();
    }
  }

  /** Periodic work: evict idle and expired resources, validate idle ones, report leaks, refill. */
  #maintain(): void {
    if (this.#state === CLOSED) return;
    const now = this.#clock.now();
    // The idle stack's bottom holds the longest-idle resources.
    let keep = this.#idle.length + this.#active + this.#pending;
    for (let index = 0; index < this.#idle.length; ) {
      const entry = this.#idle[index]!;
      const idleTooLong = now - entry.releasedAt >= this.options.idleTimeoutMs && keep > this.options.min;
      if (idleTooLong || this.#expired(entry) || entry.broken) {
        this.#idle.splice(index, 1);
        if (this.#metrics.enabled) this.#metrics.idle.dec();
        this.#destroyEntry(entry);
        keep -= 1;
        continue;
      }
      index += 1;
    }
    if (this.options.validateIdle && this.#factory.validate !== undefined) {
      for (const entry of this.#idle.splice(0)) {
        if (this.#metrics.enabled) this.#metrics.idle.dec();
        void this.#validate(entry).then((ok) => {
          if (ok && this.#stillUsable(entry)) this.#handOut(entry);
          this.#dispatch();
          this.#fill();
        });
      }
    }
    this.#reportLeaks(now);
    this.#fill();
  }

  #reportLeaks(now: number): void {
    const threshold = this.options.leakDetectionThresholdMs;
    if (threshold === undefined) return;
    for (const entry of this.#entries.values()) {
      if (entry.state !== LENT || entry.leakReported || now - entry.acquiredAt < threshold) continue;
      entry.leakReported = true;
      this.#metrics.leaks.inc();
      this.#logger.warn('connection held longer than the leak threshold', {
        heldMs: now - entry.acquiredAt,
        thresholdMs: threshold,
        acquireStack: entry.acquireSite?.stack,
      });
    }
  }

  /** The resources currently lent and held past the leak threshold. */
  leaks(): LeakReport[] {
    const threshold = this.options.leakDetectionThresholdMs ?? 0;
    const now = this.#clock.now();
    const out: LeakReport[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.state === LENT && now - entry.acquiredAt >= threshold) {
        out.push({ pool: this.name, heldMs: now - entry.acquiredAt, acquireStack: entry.acquireSite?.stack });
      }
    }
    return out;
  }

  #checkDrained(): void {
    if (
      this.#drainListeners.length > 0 &&
      this.#active === 0 &&
      this.#resetting === 0 &&
      this.#liveWaiters === 0
    ) {
      for (const listener of this.#drainListeners.splice(0)) listener();
    }
  }

  /** Closes everything, once: later callers wait for the same shutdown. */
  #shutdown(): Promise<void> {
    this.#shutting ??= this.#closeAll();
    return this.#shutting;
  }

  async #closeAll(): Promise<void> {
    this.#state = CLOSED;
    // A drain() still waiting for lent resources ends with this shutdown.
    for (const listener of this.#drainListeners.splice(0)) listener();
    clearInterval(this.#timer);
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    this.#rejectAllWaiters(new PoolClosedError(this.name));
    const closing: Promise<void>[] = [];
    const metrics = this.#metrics.enabled ? this.#metrics : undefined;
    for (const entry of [...this.#entries.values()]) {
      if (entry.state === LENT) {
        this.#active -= 1;
        metrics?.active.dec();
        this.#takenBack.add(entry.resource);
        this.#abort(entry.resource);
      } else if (entry.state === IDLE) {
        metrics?.idle.dec();
      }
      entry.state = BUSY;
      this.#entries.delete(entry.resource);
      this.#metrics.destroyed.inc();
      closing.push(this.#closeResource(entry.resource, true));
    }
    this.#idle.length = 0;
    // Whatever the counts say now, a closed pool holds nothing: its share leaves the gauges.
    this.#metrics.release();
    await Promise.all(closing);
  }
}

/**
 * Calls a factory method as a promise: one that throws before returning its promise (a create
 * reading bad config), or returns none (a plain-JavaScript `destroy(c) { c.end() }`), as
 * generic-pool and tarn accept. Otherwise a create's throw left its slot counted as opening for
 * good, and a destroy's crashed the process from the eviction timer.
 */
function promised<R>(call: () => R | PromiseLike<R>): Promise<R> {
  try {
    return Promise.resolve(call());
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * True when `acquire()` would lend at once (an idle resource, or room to open one) instead of
 * queueing: background health probes use it so they never wait behind callers for a busy pool,
 * whose own traffic is the check.
 */
export function lendsWithoutWaiting<T>(pool: Pool<T>): boolean {
  const { idle, waiting, size } = pool.stats;
  return waiting === 0 && (idle > 0 || size < pool.options.max);
}
