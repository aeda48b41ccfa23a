import {
  type BreakerOptions,
  type BreakerState,
  type CircuitBreaker,
  createCircuitBreaker,
  type Logger,
} from '@noa/core';
import { BackendUnavailableError } from '../errors.js';
import type { CacheMetrics } from '../metrics.js';
import { DeadlineQueue } from './deadline-queue.js';
import type { RedisClient } from './redis-client.js';

/** The failure of a call not sent because the connection is down (see {@link RedisGuard.sendOnlyWhenConnected}). */
class NotConnectedError extends Error {
  readonly code = 'NOA_CACHE_NOT_CONNECTED';
  constructor(status: string) {
    super(
      `redis connection ${status}; command not sent (ioredis would queue it and send it on reconnecting)`,
    );
  }
}

/** Options of {@link RedisGuard}. */
export interface RedisGuardOptions {
  operationTimeoutMs: number;
  breaker: BreakerOptions;
  onBackendError: 'degrade' | 'throw';
  metrics: CacheMetrics;
  logger: Logger;
}

/**
 * Runs every Redis call under a per-operation deadline and an error-rate circuit breaker.
 * While the breaker is open calls are not attempted; either way a failure becomes the
 * caller's fallback value (degraded mode, counted in metrics) or a
 * {@link BackendUnavailableError} when configured to throw.
 */
export class RedisGuard {
  readonly #breaker: CircuitBreaker;
  readonly #options: RedisGuardOptions;
  readonly #deadlines: DeadlineQueue;
  #lastWarnAt = 0;
  #healthy = true;
  /** The status that stops calls from being sent, or undefined while they can go out. */
  #disconnected: () => string | undefined = () => undefined;

  constructor(options: RedisGuardOptions) {
    this.#options = options;
    this.#breaker = createCircuitBreaker('redis', options.breaker);
    this.#deadlines = new DeadlineQueue(options.operationTimeoutMs);
    // A gauge set only on changes would have no sample until Redis first failed.
    if (options.metrics.enabled) options.metrics.breakerState(this.#breaker.state);
    this.#breaker.onStateChange((state) => {
      options.metrics.breakerState(state);
      const log = state === 'open' ? options.logger.warn : options.logger.info;
      log.call(options.logger, `redis circuit breaker ${state}`, { state });
    });
  }

  /**
   * Fails calls at once, unsent, while `client` is down after it was ready once (reconnecting,
   * closed): ioredis would hold them in its offline queue and send them when it reconnects,
   * long after they failed here, so a write that the cache counted as lost landed over the
   * later writes of instances that had stayed connected. Before the first `ready`, calls are
   * queued as ioredis does (a cache used right after its client was created).
   */
  sendOnlyWhenConnected(client: RedisClient): void {
    let wasReady = client.status === 'ready';
    this.#disconnected = () => {
      const status = client.status;
      if (status === 'ready') {
        wasReady = true;
        return undefined;
      }
      return wasReady ? status : undefined;
    };
  }

  /** False from a failed call until the next successful one (cheap hint for optional calls). */
  get healthy(): boolean {
    return this.#healthy;
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
    try {
      const result = await this.#breaker.execute(() => {
        const down = this.#disconnected();
        if (down !== undefined) return Promise.reject(new NotConnectedError(down));
        return this.#deadlines.run(work(), `redis ${operation}`);
      });
      if (metrics.enabled) metrics.latency('l2', operation, (performance.now() - started) / 1_000);
      this.#healthy = true;
      return result;
    } catch (error) {
      const reason =
        (error as { code?: string }).code === 'NOA_TIMEOUT'
          ? 'timeout'
          : (error as { code?: string }).code === 'NOA_CIRCUIT_OPEN'
            ? 'circuit_open'
            : 'error';
      this.#healthy = false;
      // A call that was sent is timed however it ended: timing successes only, the histogram
      // showed a Redis that hung as a fast one. Skipped calls (breaker open, not connected) took
      // no Redis time.
      if (metrics.enabled && reason !== 'circuit_open' && !(error instanceof NotConnectedError))
        metrics.latency('l2', operation, (performance.now() - started) / 1_000);
      metrics.degraded(operation, reason);
      if (reason !== 'circuit_open') metrics.error('l2', operation);
      return this.#fail(operation, fallback, error);
    }
  }

  #fail<T>(operation: string, fallback: T, error: unknown): T {
    if ((error as { code?: string } | undefined)?.code !== 'NOA_CIRCUIT_OPEN') {
      // One warning per second at most: an outage must not flood the logs.
      const now = Date.now();
      if (now - this.#lastWarnAt > 1_000) {
        this.#lastWarnAt = now;
        this.#options.logger.warn('redis operation failed; serving from L1', {
          operation,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
    if (this.#options.onBackendError === 'throw') {
      throw new BackendUnavailableError(operation, { cause: error });
    }
    return fallback;
  }
}
