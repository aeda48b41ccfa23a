import { type CounterMetric, type GaugeMetric, type HistogramMetric, MetricsFactory } from '@noa/core';
import type { Registry } from 'prom-client';

/** The prom-client registry metrics are created on. */
export type MetricsRegistry = Registry;

/** The limiter's metrics (no-ops without a registry). */
export interface LimiterMetrics {
  checks: CounterMetric<'outcome' | 'source'>;
  errors: CounterMetric<'kind'>;
  duration: HistogramMetric<'store' | 'result'>;
  fallback: GaugeMetric;
  adjustments: CounterMetric<'operation'>;
  lateRefunds: CounterMetric;
  acquireWaiters: GaugeMetric;
  acquireWaits: HistogramMetric<'result'>;
}

/** Wait times of `acquire()`, in seconds: from an immediate admission to a minute. */
const acquireWaitBuckets = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Creates `noa_rate_limiter_*` metrics on `registry`. */
export function createLimiterMetrics(registry: MetricsRegistry | undefined): LimiterMetrics {
  const factory = new MetricsFactory('rate_limiter', registry);
  return {
    checks: factory.counter('checks_total', 'Rate limit checks by outcome and deciding source', [
      'outcome',
      'source',
    ]),
    errors: factory.counter(
      'store_errors_total',
      'Failed store calls by kind (timeout, circuit-open, error)',
      ['kind'],
    ),
    duration: factory.histogram(
      'check_duration_seconds',
      'Latency of store calls for rate limit checks, answered (ok) or failed (timeout, error)',
      ['store', 'result'],
    ),
    fallback: factory.gauge(
      'fallback_active',
      'limiters bypassing their store now (breaker not closed): 1 or 0 for one limiter, summed over limiters sharing the registry',
    ),
    adjustments: factory.counter(
      'adjustments_total',
      'Peeks, refunds, penalties, blocks and unblocks by operation (not counted as checks)',
      ['operation'],
    ),
    lateRefunds: factory.counter(
      'late_refunds_total',
      'Requests the fail mode refused whose store call, answering after its deadline, had counted them: refunded',
    ),
    acquireWaiters: factory.gauge('acquire_waiters', 'Callers of acquire() waiting for an admission'),
    acquireWaits: factory.histogram(
      'acquire_wait_seconds',
      'Time acquire() callers waited, by result (acquired, timeout, aborted, queue-full, denied, blocked, limited, exceeds-capacity, unavailable, closed)',
      ['result'],
      acquireWaitBuckets,
    ),
  };
}
