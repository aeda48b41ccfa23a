import {
  type BreakerOptions,
  type BreakerProbe,
  type BreakerState,
  type CircuitBreaker,
  createCircuitBreaker,
  type Logger,
  LogSampler,
  PartAnswers,
  PartFailure,
  partAnswerWindowMs,
  pingRedis,
} from '@noa/core';
import { BackendUnavailableError } from '../errors.js';
import type { CacheMetrics } from '../metrics.js';
import { DeadlineQueue } from './deadline-queue.js';
import { failedAttempts, type IoRedisClient, isCluster } from './ioredis-client.js';

/** The failure of a call not sent because the connection is down (see {@link RedisGuard.sendOnlyWhenConnected}). */
class NotConnectedError extends Error {
  readonly code = 'NOA_CACHE_NOT_CONNECTED';
  // Its own name, not Error's: health reports and logs give a cause as name, code and message.
  override readonly name = 'NotConnectedError';
  constructor(status: string, attemptFailed = false) {
    super(
      attemptFailed
        ? `redis connection ${status} after a failed connection attempt; command not sent`
        : `redis connection ${status}; command not sent (ioredis would queue it and send it on reconnecting)`,
    );
  }
}

/**
 * What one client's events tell of its connection (one watch per client, shared by its caches):
 * whether a connection attempt failed since it was last ready, and a promise for its next
 * `ready`, `close` or `end`.
 */
class ConnectionWatch {
  /**
   * A connection attempt failed since the client was last ready: a `close` came with no
   * `ready` since the previous one (the connection it closed was never usable).
   */
  attemptFailed = false;
  #readySinceClose: boolean;
  #next: Promise<void> | undefined;
  #wake: () => void = () => {};

  constructor(client: IoRedisClient) {
    this.#readySinceClose = client.status === 'ready';
    // A client no cache watched before may have been failing for a while: without this, its
    // first calls were held until its next attempt failed, up to one retry delay (2 s with
    // ioredis's default strategy), though the client had already counted failed attempts.
    this.attemptFailed = !this.#readySinceClose && failedAttempts(client) > 0;
    client.on('ready', () => {
      this.#readySinceClose = true;
      this.attemptFailed = false;
      this.#changed();
    });
    client.on('close', () => {
      this.attemptFailed = !this.#readySinceClose;
      this.#readySinceClose = false;
      this.#changed();
    });
    client.on('end', () => this.#changed());
  }

  /** Settles on the client's next `ready`, `close` or `end`. */
  next(): Promise<void> {
    this.#next ??= new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
    return this.#next;
  }

  #changed(): void {
    this.#next = undefined;
    this.#wake();
  }
}

const watches = new WeakMap<IoRedisClient, ConnectionWatch>();

function watchOf(client: IoRedisClient): ConnectionWatch {
  let watch = watches.get(client);
  if (!watch) {
    watch = new ConnectionWatch(client);
    watches.set(client, watch);
  }
  return watch;
}

/** Options of {@link RedisGuard}. */
export interface RedisGuardOptions {
  operationTimeoutMs: number;
  breaker: BreakerOptions;
  onBackendError: 'degrade' | 'throw';
  metrics: CacheMetrics;
  logger: Logger;
  /** At most one failure warning per this many ms: an outage must not flood the logs. */
  logIntervalMs: number;
}

/**
 * Runs every Redis call under a per-operation deadline and an error-rate circuit breaker.
 * While the breaker is open calls are not attempted; either way a failure becomes the
 * caller's fallback value (degraded mode, counted in metrics) or a
 * {@link BackendUnavailableError} when configured to throw.
 */
export class RedisGuard {
  #breaker: CircuitBreaker;
  readonly #options: RedisGuardOptions;
  readonly #deadlines: DeadlineQueue;
  /** One failure warning per `logIntervalMs` at most: an outage must not flood the logs. */
  readonly #failureLog: LogSampler;
  #healthy = true;
  /** `performance.now()` of the last call that failed as its master's alone (see {@link partFailing}). */
  #partFailedAt = Number.NEGATIVE_INFINITY;
  #lastError: unknown;
  /** The client's status while calls must not go out (undefined: they can). */
  #disconnected: () => string | undefined = () => undefined;
  /** The client's connection, once {@link sendOnlyWhenConnected} was called. */
  #watch: ConnectionWatch | undefined;
  /** Starts connecting a `lazyConnect` client not connected yet (`wait`). */
  #connectIfWaiting: () => void = () => {};
  /**
   * On a Cluster (whose masters fail apart): when a call was last answered, so that a failed call
   * while another was answered within a second is its master's, not counted by the breaker (core's
   * `PartAnswers`, as the rate limiter counts). Each key's GET is its own breaker call there, so
   * with one master of three stalled a run of 10 reads on it (one `getMany`'s keys on that master,
   * or a run by chance at low traffic) opened the breaker for every key. Undefined on one node.
   */
  #parts: PartAnswers | undefined;

  constructor(options: RedisGuardOptions) {
    this.#options = options;
    this.#failureLog = new LogSampler({ intervalMs: options.logIntervalMs });
    this.#breaker = this.#newBreaker(undefined);
    this.#deadlines = new DeadlineQueue(options.operationTimeoutMs);
    // A gauge set only on changes would have no sample until Redis first failed.
    // One source of truth: the gauge reads the breaker's `state` (as stats() and health() do) at
    // each scrape, not only on cockatiel's changes, which miss the move to half-open while idle.
    if (options.metrics.enabled) options.metrics.followBreaker(() => this.#breaker.state);
  }

  /**
   * The breaker, with `probe` as its way back (see core's `BreakerHooks`): without one, a user
   * call is the half-open trial.
   */
  #newBreaker(probe: BreakerProbe | undefined): CircuitBreaker {
    const options = this.#options;
    const breaker = createCircuitBreaker('redis', options.breaker, { probe });
    breaker.onStateChange((state) => {
      options.metrics.breakerState(breaker.state);
      const log = state === 'open' ? options.logger.warn : options.logger.info;
      log.call(options.logger, `redis circuit breaker ${state}`, { state });
    });
    return breaker;
  }

  /**
   * Sends calls only while `client` is ready. One made while it is not (reconnecting, or not
   * connected yet) is held, unsent, until it is ready again within the call's deadline, and
   * fails unsent past it or once the client has ended. Handed to ioredis, it stayed in its
   * offline queue past the deadline and was sent on reconnecting: a write the cache had
   * counted as lost landed over the later writes of instances that had stayed connected.
   * Failed at once, a dropped connection that ioredis re-established in a moment (`CLIENT
   * KILL`, an idle timeout) failed every call of that moment: the breaker opened, and a
   * getOrSet waiting on another instance's lease ran the factory a second time. Once a
   * connection attempt has failed since the client was last ready, though, Redis is down, not
   * blinking: calls fail at once, unsent, and a held call fails as that attempt does. Held for
   * their deadline, every call of a long outage waited it until the breaker opened, and every
   * half-open probe after. A client created with `lazyConnect` and not connected yet (`wait`)
   * is connected by the call, which is then held like any other: sent in `wait`, it went to
   * ioredis's offline queue, so with Redis down a write waited its whole deadline, was counted
   * as lost, and landed on reconnecting over a later write of another instance.
   */
  sendOnlyWhenConnected(client: IoRedisClient): void {
    // Before any call (the tier wires its client at once): the breaker, once open, tries Redis
    // again by a probe under operationTimeoutMs, sent as calls are (held while reconnecting, failed
    // at once while down), and not by a user call: a get while it is open is answered from L1 at
    // once instead of waiting out the deadline as the trial on a Redis still stalled.
    this.#parts = isCluster(client)
      ? new PartAnswers(
          () => performance.now(),
          () => this.#breaker.state === 'closed',
        )
      : undefined;
    this.#breaker = this.#newBreaker(() => this.#send('PING (breaker probe)', () => this.#ping(client)));
    this.#disconnected = () => {
      const status = client.status;
      return status === 'ready' ? undefined : status;
    };
    this.#watch = watchOf(client);
    this.#connectIfWaiting = () => {
      // ioredis moves to `connecting` at once; a failed attempt is seen by the watch (`close`).
      if (client.status === 'wait') client.connect().catch(() => {});
    };
  }

  /**
   * The breaker's probe: a PING (core's `pingRedis`). On a Cluster, one PING to every master,
   * answered when any of them answers (`masters: 'any'`): ioredis sends a keyless command (`client.ping()`) to one master picked at
   * random, so the breaker's verdict was that master's, and with one master of three stalled the
   * probe kept the breaker open a third of the time though the others answered. The breaker opens
   * on a Cluster only when no master answered for a second (core's `partAnswerWindowMs`), so it closes as soon
   * as one answers again: the stalled master's keys then fail alone, uncounted.
   */
  #ping(client: IoRedisClient): Promise<unknown> {
    return pingRedis(client, { masters: 'any' });
  }

  /** Sends `work` now, or once the client is ready again within the deadline (see {@link sendOnlyWhenConnected}). */
  #send<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const label = `redis ${operation}`;
    if (this.#disconnected() === 'wait') this.#connectIfWaiting();
    const down = this.#disconnected();
    if (down === undefined) return this.#deadlines.run(work(), label);
    const watch = this.#watch!;
    if (down === 'end' || watch.attemptFailed)
      return Promise.reject(new NotConnectedError(down, watch.attemptFailed));
    let expired = false;
    let sent = false;
    const held = (async () => {
      // The first `close` seen may be that of the drop itself (its event follows the status).
      for (;;) {
        await watch.next();
        const still = this.#disconnected();
        if (expired || still === 'end' || (still !== undefined && watch.attemptFailed))
          throw new NotConnectedError(still ?? down, watch.attemptFailed);
        if (still === undefined) break;
      }
      sent = true;
      return work();
    })();
    return this.#deadlines.run(held, label).catch((error: unknown) => {
      // Past the deadline before the client was ready: never sent (`expired` keeps it so).
      expired = true;
      throw sent ? error : new NotConnectedError(this.#disconnected() ?? down, watch.attemptFailed);
    });
  }

  /**
   * Whether Redis as a whole answers: false from a failed call the breaker counted until the next
   * successful call. On one node that is any failed call; on a Cluster, a call that failed while
   * another master had answered within core's `partAnswerWindowMs` is its master's failure (see
   * {@link partFailing}) and leaves it as it was, so one stalled master of three does not flip it
   * with every call of its keys. A hint for calls that are optional (whether to wait for a write),
   * process-wide: it may already say what another call did, so it never tells how a given call
   * went. That is the call's own outcome (a read's `failed` value, see `RedisTier.getOrFailed`).
   */
  get healthy(): boolean {
    return this.#healthy;
  }

  /**
   * On a Cluster, whether a call failed as its master's alone (another master answering, the
   * breaker closed) within core's `partAnswerWindowMs`: the keys of one master are failing while
   * the others answer. Always false on one node, where every failure is Redis's (see
   * {@link healthy}).
   */
  get partFailing(): boolean {
    return performance.now() - this.#partFailedAt < partAnswerWindowMs;
  }

  /** The error of the last failed call (not one the open breaker skipped) until a call succeeds. */
  get lastError(): unknown {
    return this.#lastError;
  }

  /** The breaker's state. */
  get state(): BreakerState {
    return this.#breaker.state;
  }

  /** Runs `work` guarded; returns `fallback` (or throws) when Redis fails. */
  async run<T>(operation: string, fallback: T, work: () => Promise<T>): Promise<T> {
    const metrics = this.#options.metrics;
    // No short-cut on state === 'open': cockatiel only moves to half-open when a call is
    // attempted after halfOpenAfterMs, and an open breaker rejects at once anyway.
    const started = metrics.enabled ? performance.now() : 0;
    let partFailure = false;
    try {
      const outcome = await this.#breaker.execute(() => {
        const call = this.#send(operation, work);
        return this.#parts ? this.#parts.counted(call) : call;
      });
      if (outcome instanceof PartFailure) {
        partFailure = true;
        throw outcome.error;
      }
      const result = outcome;
      if (metrics.enabled) metrics.latency('l2', operation, (performance.now() - started) / 1_000);
      this.#healthy = true;
      this.#lastError = undefined;
      return result;
    } catch (error) {
      const reason =
        (error as { code?: string }).code === 'NOA_TIMEOUT'
          ? 'timeout'
          : (error as { code?: string }).code === 'NOA_CIRCUIT_OPEN'
            ? 'circuit_open'
            : 'error';
      // Its master's failure alone (a Cluster's other masters answer): Redis as a whole still does.
      if (partFailure) this.#partFailedAt = performance.now();
      else this.#healthy = false;
      // A call that was sent is timed however it ended: timing successes only, the histogram
      // showed a Redis that hung as a fast one. Skipped calls (breaker open, not connected) took
      // no Redis time.
      if (metrics.enabled && reason !== 'circuit_open' && !(error instanceof NotConnectedError))
        metrics.latency('l2', operation, (performance.now() - started) / 1_000);
      metrics.degraded(operation, reason);
      if (reason !== 'circuit_open') {
        metrics.error('l2', operation);
        this.#lastError = error;
      }
      return this.#fail(operation, fallback, error);
    }
  }

  #fail<T>(operation: string, fallback: T, error: unknown): T {
    if ((error as { code?: string } | undefined)?.code !== 'NOA_CIRCUIT_OPEN') {
      this.#failureLog.log(this.#options.logger, 'warn', 'redis operation failed; serving from L1', {
        operation,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    if (this.#options.onBackendError === 'throw') {
      throw new BackendUnavailableError(operation, { cause: error });
    }
    return fallback;
  }
}
