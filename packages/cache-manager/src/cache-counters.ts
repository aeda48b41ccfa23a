import type { BreakerState } from '@noa/core';
import type { StaleReason } from './cache-events.js';

/**
 * A snapshot of the cache's own state and its cumulative counters (for health endpoints,
 * logs and tests), kept without prom-client. Counters run from construction or the last
 * `resetStats()`, cache-wide (a namespace view reads its whole cache), and match the
 * prom-client series named on each field.
 */
export interface CacheStats {
  l1: { policy: string; entries: number; bytes: number };
  /** Redis breaker state, or `none` for a memory-only cache. */
  l2: BreakerState | 'none';
  /** Lookups answered with a fresh value, by the tier that had it (`requests_total{result="hit"}`). */
  hits: { l1: number; l2: number };
  /**
   * Lookups that found no fresh value in either tier: the caller then ran the factory, joined
   * a run in progress, waited for another instance, or got nothing (`requests_total` of L1
   * `miss` and `stale`, less the L2 hits, never below 0: a lookup in flight at `resetStats()`
   * that then hits L2 had its L1 miss counted before the reset).
   */
  misses: number;
  /** `(hits.l1 + hits.l2) / (hits + misses)`; 0 before any lookup. */
  hitRate: number;
  /** Values served past their freshness, by reason (`stale_served_total`). */
  staleServed: Record<StaleReason, number>;
  /** Factory calls, failed ones included (`factory_runs_total`; a `getOrSetMany` batch is one). */
  factoryRuns: number;
  /** Factory calls that threw or rejected (`factory_runs_total{result="error"}`). */
  factoryErrors: number;
  /**
   * Redis calls that failed or exceeded `operationTimeoutMs`, and L2 values that could not be
   * encoded or decoded (`errors_total{tier="l2"}`).
   */
  l2Errors: number;
  /** Redis calls that exceeded `operationTimeoutMs` (`degraded_operations_total{kind="timeout"}`). */
  l2Timeouts: number;
  /**
   * Redis operations that failed or were skipped, served from L1 or their fallback instead
   * (`degraded_operations_total`); `breakerOpen` of them skipped because the breaker was open.
   */
  degraded: { total: number; breakerOpen: number };
  /**
   * Entries L1 dropped on its own (`evictions_total{tier="l1"}`): `evicted` for room (entry
   * or byte bound), `expired` past their grace, `tooLarge` not kept at all, each larger than
   * `l1.maxBytes` alone (memory only, such a value is lost). Deletes and invalidations are not
   * counted.
   */
  evictions: { evicted: number; expired: number; tooLarge: number };
}

/**
 * Cumulative counters behind `cache.stats()`, kept without prom-client: plain number fields,
 * incremented by {@link CacheMetrics} next to the matching prom-client series (so both agree),
 * whether or not a registry is configured. No object is built per count.
 */
export class CacheCounters {
  /** Lookups L1 answered with a fresh value (`requests_total{tier="l1",result="hit"}`). */
  l1Hits = 0;
  /** Lookups L1 had no fresh value for (`result` `miss` plus `stale`). */
  l1Misses = 0;
  l2Hits = 0;
  l2Misses = 0;
  staleFactoryError = 0;
  staleSoftTimeout = 0;
  staleHardTimeout = 0;
  staleLockTimeout = 0;
  factoryOk = 0;
  factoryErrors = 0;
  /** `errors_total{tier="l2"}`: failed or timed-out Redis calls, values not encodable/decodable. */
  l2Errors = 0;
  l2Timeouts = 0;
  /** `degraded_operations_total`, every reason. */
  degraded = 0;
  /** `degraded_operations_total{kind="circuit_open"}`. */
  breakerOpen = 0;
  evicted = 0;
  expired = 0;
  tooLarge = 0;

  /** `cache.stats()`: the sizes and breaker state given, with the counters and what derives from them. */
  snapshot(l1: CacheStats['l1'], l2: CacheStats['l2']): CacheStats {
    const hits = this.l1Hits + this.l2Hits;
    // Every L2 lookup follows an L1 miss, so the L1 lookups are all the lookups. Not quite
    // across a reset: a lookup in flight then had its L1 miss counted before it and may have
    // its L2 hit counted after, so the L2 hits can outnumber the L1 misses for a moment.
    const misses = Math.max(0, this.l1Misses - this.l2Hits);
    const lookups = hits + misses;
    return {
      l1,
      l2,
      hits: { l1: this.l1Hits, l2: this.l2Hits },
      misses,
      hitRate: lookups === 0 ? 0 : hits / lookups,
      staleServed: {
        factory_error: this.staleFactoryError,
        soft_timeout: this.staleSoftTimeout,
        hard_timeout: this.staleHardTimeout,
        lock_timeout: this.staleLockTimeout,
      },
      factoryRuns: this.factoryOk + this.factoryErrors,
      factoryErrors: this.factoryErrors,
      l2Errors: this.l2Errors,
      l2Timeouts: this.l2Timeouts,
      degraded: { total: this.degraded, breakerOpen: this.breakerOpen },
      evictions: { evicted: this.evicted, expired: this.expired, tooLarge: this.tooLarge },
    };
  }

  reset(): void {
    this.l1Hits = 0;
    this.l1Misses = 0;
    this.l2Hits = 0;
    this.l2Misses = 0;
    this.staleFactoryError = 0;
    this.staleSoftTimeout = 0;
    this.staleHardTimeout = 0;
    this.staleLockTimeout = 0;
    this.factoryOk = 0;
    this.factoryErrors = 0;
    this.l2Errors = 0;
    this.l2Timeouts = 0;
    this.degraded = 0;
    this.breakerOpen = 0;
    this.evicted = 0;
    this.expired = 0;
    this.tooLarge = 0;
  }
}
