import {
  type CounterMetric,
  type GaugeMetric,
  type HistogramMetric,
  type Labels,
  MetricsFactory,
  metricLabelValue,
} from '@noa/core';
import type { Registry } from 'prom-client';

/** The prom-client registry metrics are created on. */
export type MetricsRegistry = Registry;

/** The limiter's metrics (no-ops without a registry). */
export interface LimiterMetrics {
  checks: CounterMetric<'result' | 'source'>;
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

/**
 * The labels of one observation as the metrics spell them: this limiter's `limiter` label, and
 * every other value in snake_case (the API's `fail-mode` is `fail_mode`; docs/decisions/012).
 */
function spelled(limiter: string, labels: Labels<string>): Labels<string> {
  const out: Labels<string> = { limiter };
  for (const [name, value] of Object.entries(labels))
    out[name] = typeof value === 'string' ? metricLabelValue(value) : value;
  return out;
}

/**
 * Creates `noa_rate_limiter_*` metrics on `registry`, each labelled `limiter` = `limiter` (the
 * `name` option): limiters of one name on one registry add up, others are their own series.
 */
export function createLimiterMetrics(
  registry: MetricsRegistry | undefined,
  limiter = 'limiter',
): LimiterMetrics {
  const factory = new MetricsFactory('rate_limiter', registry);
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => {
    const metric = factory.counter<L | 'limiter'>(name, help, ['limiter', ...labelNames]);
    if (!factory.enabled) return metric as CounterMetric<L>;
    return {
      inc: (labels: Labels<L> = {}, value?: number) => metric.inc(spelled(limiter, labels), value),
    } satisfies CounterMetric<L>;
  };
  const gauge = (name: string, help: string) => {
    const metric = factory.gauge(name, help, ['limiter']);
    const labels = { limiter };
    // inc by 0 so this limiter's series reads 0 from the start; a set(0) would wipe the share
    // of another limiter of the same name.
    metric.inc(labels, 0);
    return {
      set: (_labels: Labels<string>, value: number) => metric.set(labels, value),
      inc: (_labels?: Labels<string>, value?: number) => metric.inc(labels, value),
      dec: (_labels?: Labels<string>, value?: number) => metric.dec(labels, value),
    } satisfies GaugeMetric;
  };
  const histogram = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets?: number[],
  ) => {
    const metric = factory.histogram<L | 'limiter'>(name, help, ['limiter', ...labelNames], buckets);
    if (!factory.enabled) return metric as HistogramMetric<L>;
    return {
      observe: (labels: Labels<L>, value: number) => metric.observe(spelled(limiter, labels), value),
    } satisfies HistogramMetric<L>;
  };
  return {
    checks: counter('checks_total', 'Rate limit checks by result and deciding source', ['result', 'source']),
    errors: counter('store_errors_total', 'Failed store calls by kind (timeout, circuit_open, error)', [
      'kind',
    ]),
    duration: histogram(
      'check_duration_seconds',
      'Latency of store calls for rate limit checks, answered (ok) or failed (timeout, error)',
      ['store', 'result'],
    ),
    fallback: gauge(
      'fallback_active',
      'limiters bypassing their store now (breaker not closed): 1 or 0 for one limiter, summed over limiters of one name sharing the registry',
    ),
    adjustments: counter(
      'adjustments_total',
      'Peeks, refunds, penalties, blocks and unblocks by operation (not counted as checks)',
      ['operation'],
    ),
    lateRefunds: counter(
      'late_refunds_total',
      'Requests the fail mode refused whose store call, answering after its deadline, had counted them: refunded',
    ),
    acquireWaiters: gauge('acquire_waiters', 'Callers of acquire() waiting for an admission'),
    acquireWaits: histogram(
      'acquire_wait_seconds',
      'Time acquire() callers waited, by result (acquired, timeout, aborted, queue_full, denied, blocked, limited, exceeds_capacity, unavailable, closed)',
      ['result'],
      acquireWaitBuckets,
    ),
  };
}
