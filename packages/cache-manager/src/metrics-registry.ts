/**
 * The `registry` option: a prom-client `Registry`. Typed by the members the cache's metrics use
 * (checked at construction), not as prom-client's class, so that the cache's declarations do not
 * import prom-client: it is an optional peer, and an app without metrics compiled with
 * `skipLibCheck: false` would need it installed (TS2307). prom-client's `Registry` satisfies it
 * (type-tested).
 */
export interface MetricsRegistry {
  /** Adds a metric (prom-client's `Metric`). */
  registerMetric(metric: never): void;
  /** The metric of that name, if registered. */
  getSingleMetric(name: string): unknown;
}
