import {
  type CounterMetric,
  type GaugeMetric,
  type HistogramMetric,
  type Labels,
  MetricsFactory,
  metricLabelValue,
} from '@noa/core';
import type { Counter, Histogram, Registry } from 'prom-client';
import type { CheckOutcome, DecisionSource } from './result.js';

/** The prom-client registry metrics are created on. */
export type MetricsRegistry = Registry;

/** Counts one check by its outcome (label `result`) and the source that decided it. */
export interface CheckCounter {
  inc(result: CheckOutcome, source: DecisionSource): void;
  /** Adds what this limiter counted to the registry and stops adding at scrapes (at `close()`). */
  release(): void;
}

/** The limiter's metrics (no-ops without a registry). */
export interface LimiterMetrics {
  checks: CheckCounter;
  errors: CounterMetric<'kind'>;
  duration: HistogramMetric<'store' | 'result'>;
  fallback: GaugeMetric;
  adjustments: CounterMetric<'operation'>;
  lateRefunds: CounterMetric;
  acquireWaiters: GaugeMetric;
  acquireWaits: HistogramMetric<'result'>;
  /** Flushes what is counted but not yet in the registry, for good (at the limiter's `close()`). */
  release(): void;
}

/** Wait times of `acquire()`, in seconds: from an immediate admission to a minute. */
const acquireWaitBuckets = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

// Records over the unions: a value added to one without being listed here fails typecheck.
const checkOutcomes = Object.keys({
  allowed: true,
  limited: true,
  blocked: true,
  denied: true,
  allowlisted: true,
  unlimited: true,
  'exceeds-capacity': true,
} satisfies Record<CheckOutcome, true>) as CheckOutcome[];
const decisionSources = Object.keys({
  store: true,
  'local-cache': true,
  fallback: true,
  'fail-mode': true,
  lists: true,
} satisfies Record<DecisionSource, true>) as DecisionSource[];

const noop = (): void => {};
const noopChecks: CheckCounter = { inc: noop, release: noop };

/** The slot of each (result, source) in a {@link PendingChecks}' counts. */
const checkSlots = {} as Record<CheckOutcome, Record<DecisionSource, number>>;
const checkSlotLabels: { result: string; source: string }[] = [];
for (const result of checkOutcomes) {
  const bySource = {} as Record<DecisionSource, number>;
  for (const source of decisionSources) {
    bySource[source] = checkSlotLabels.length;
    checkSlotLabels.push({ result: metricLabelValue(result), source: metricLabelValue(source) });
  }
  checkSlots[result] = bySource;
}

/**
 * What the limiters of one name counted of checks and have not yet added to the prom-client
 * counter: one slot per (result, source), so a check adds 1 to a number, which allocates nothing (a
 * prom-client inc builds its series' hash string and a result object on every call). Shared by the
 * limiters of the name (their series are the same): what is kept grows with the names, as the
 * registry's series do, not with the limiters made (one per test or tenant, dropped without close()).
 */
class PendingChecks {
  readonly counted = new Float64Array(checkSlotLabels.length);
  readonly #children: { inc(value: number): void }[];

  constructor(counter: Counter<string>, limiter: string) {
    this.#children = checkSlotLabels.map((labels) => counter.labels({ limiter, ...labels }));
  }

  /** Adds the counts to the counter's series and zeroes them. */
  flush(): void {
    const counted = this.counted;
    for (let slot = 0; slot < counted.length; slot += 1) {
      const value = counted[slot]!;
      if (value === 0) continue;
      counted[slot] = 0;
      this.#children[slot]!.inc(value);
    }
  }
}

/**
 * The pending checks of each limiter name counting into each prom-client counter (one per
 * registry), added by the counter's `collect` when the registry is read (every registry read calls
 * it) and dropped by its `reset` (`registry.resetMetrics()`), as counts already in the counter are.
 */
const pendingChecks = new WeakMap<object, Map<string, PendingChecks>>();

/** The pending checks of `limiter` on `counter`, made (and `counter` patched) on first use. */
function pendingChecksOf(counter: Counter<string>, limiter: string): PendingChecks {
  let byName = pendingChecks.get(counter);
  if (byName === undefined) {
    const created = new Map<string, PendingChecks>();
    byName = created;
    pendingChecks.set(counter, created);
    const patched = counter as unknown as { collect?: () => unknown; reset: () => void };
    const earlierCollect = patched.collect;
    patched.collect = function (this: unknown) {
      for (const pending of created.values()) pending.flush();
      return earlierCollect?.call(this);
    };
    const earlierReset = patched.reset;
    patched.reset = function (this: unknown) {
      for (const pending of created.values()) pending.counted.fill(0);
      earlierReset.call(this);
    };
  }
  let pending = byName.get(limiter);
  if (pending === undefined) {
    pending = new PendingChecks(counter, limiter);
    byName.set(limiter, pending);
  }
  return pending;
}

/** A child of a prom-client metric: its series of one set of label values. */
interface CounterChild {
  inc(value?: number): void;
}
interface HistogramChild {
  observe(value: number): void;
}

/**
 * The child of `labels` (values as the API spells them), made on its first use and kept, so a
 * later observation of the same values allocates nothing and spells nothing: the values of each
 * label are few (enumerated, or the store's kind), so the cache stays small.
 */
function childCache<L extends string, C>(
  labelNames: readonly L[],
  make: (spelled: Record<L, string>) => C,
): (labels: Labels<L>) => C {
  type Level = { [value: string]: Level | C };
  const root: Level = Object.create(null);
  return (labels) => {
    let level = root;
    for (let index = 0; index < labelNames.length - 1; index += 1) {
      const value = String(labels[labelNames[index]!] ?? '');
      let next = level[value] as Level | undefined;
      if (next === undefined) {
        next = Object.create(null) as Level;
        level[value] = next;
      }
      level = next;
    }
    const last = String(labels[labelNames[labelNames.length - 1]!] ?? '');
    let child = level[last] as C | undefined;
    if (child === undefined) {
      const spelled = {} as Record<L, string>;
      for (const name of labelNames) {
        const value = labels[name];
        spelled[name] = typeof value === 'string' ? metricLabelValue(value) : String(value ?? '');
      }
      child = make(spelled);
      level[last] = child;
    }
    return child;
  };
}

/**
 * Creates `noa_rate_limiter_*` metrics on `registry`, each labelled `limiter` = `limiter` (the
 * `name` option): limiters of one name on one registry add up, others are their own series. Every
 * enumerated value is spelled in snake_case (the API's `fail-mode` is `fail_mode`;
 * docs/decisions/012). The series a check counts in are prom-client children made here, one per
 * (result, source), so a check with metrics on builds no label object and spells nothing.
 */
export function createLimiterMetrics(
  registry: MetricsRegistry | undefined,
  limiter = 'limiter',
): LimiterMetrics {
  const factory = new MetricsFactory('rate_limiter', registry);
  // The prom-client metric the factory made or found (same type and label names, or it threw).
  const raw = <M>(name: string): M => registry!.getSingleMetric(`noa_rate_limiter_${name}`) as M;
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => {
    const metric = factory.counter<L | 'limiter'>(name, help, ['limiter', ...labelNames]);
    if (!factory.enabled) return metric as CounterMetric<L>;
    const prom = raw<Counter<string>>(name);
    const childOf = childCache<L, CounterChild>(labelNames, (spelled) =>
      prom.labels({ limiter, ...spelled }),
    );
    return {
      inc: (labels: Labels<L> = {}, value?: number) => childOf(labels).inc(value),
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
    const prom = raw<Histogram<string>>(name);
    const childOf = childCache<L, HistogramChild>(labelNames, (spelled) =>
      prom.labels({ limiter, ...spelled }),
    );
    return {
      observe: (labels: Labels<L>, value: number) => childOf(labels).observe(value),
    } satisfies HistogramMetric<L>;
  };
  const checks = (): CheckCounter => {
    factory.counter('checks_total', 'Rate limit checks by result and deciding source', [
      'limiter',
      'result',
      'source',
    ]);
    if (!factory.enabled) return noopChecks;
    const pending = pendingChecksOf(raw<Counter<string>>('checks_total'), limiter);
    const counted = pending.counted;
    return {
      inc: (result, source) => {
        counted[checkSlots[result][source]]! += 1;
      },
      // Counts after close() (a late answer) wait for the next read as any other.
      release: () => pending.flush(),
    };
  };
  const checkCounter = checks();
  return {
    release: () => checkCounter.release(),
    checks: checkCounter,
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
