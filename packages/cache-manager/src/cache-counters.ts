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
  /** `degraded_operations_total{reason="circuit_open"}`. */
  breakerOpen = 0;
  evicted = 0;
  expired = 0;

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
  }
}
