import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ConfigError } from './errors.js';

/** Label values of one observation. */
export type Labels<L extends string> = Partial<Record<L, string | number>>;

/** A monotonically increasing count. */
export interface CounterMetric<L extends string = string> {
  inc(labels?: Labels<L>, value?: number): void;
}

/** A value that goes up and down. */
export interface GaugeMetric<L extends string = string> {
  set(labels: Labels<L>, value: number): void;
  inc(labels?: Labels<L>, value?: number): void;
  dec(labels?: Labels<L>, value?: number): void;
}

/** A distribution of observed values (latencies in seconds, sizes in bytes). */
export interface HistogramMetric<L extends string = string> {
  observe(labels: Labels<L>, value: number): void;
}

/** Label values already spelled by {@link metricLabelValue}, so a hot path pays one lookup. */
const spelledLabelValues = new Map<string, string>();
/** Enumerated values are few; past this many distinct inputs, spell without remembering. */
const maxSpelledLabelValues = 1_024;

/**
 * `value` spelled as Noa's metrics spell enumerated label values (docs/decisions/012): snake_case,
 * lower case, so `circuit-open` and `circuit_open` cannot be two series of one thing. An API value
 * keeps its own spelling (`'fail-mode'`, `'half-open'`, a driver's `poolClosed`); its label value
 * is `fail_mode`, `half_open`, `pool_closed`. Free-form values (a pool, queue or limiter name) are
 * not passed through it: they stay as the user wrote them.
 */
export function metricLabelValue(value: string): string {
  const known = spelledLabelValues.get(value);
  if (known !== undefined) return known;
  const spelled = value
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toLowerCase();
  if (spelledLabelValues.size < maxSpelledLabelValues) spelledLabelValues.set(value, spelled);
  return spelled;
}

/** Default latency buckets in seconds, from 50 µs to 2.5 s. */
export const latencyBucketsSeconds = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

const noop = (): void => {};
const noopMetric = { inc: noop, dec: noop, set: noop, observe: noop };

/**
 * Creates a package's prom-client metrics on a user-supplied registry, named
 * `noa_<package>_<what>_<unit>`. Without a registry every metric is a no-op, so hot paths
 * pay nothing. Two instances sharing one registry share the metrics instead of throwing
 * "already registered".
 */
export class MetricsFactory {
  readonly enabled: boolean;
  readonly #registry: Registry | undefined;
  readonly #prefix: string;

  /** @param packageName e.g. `rate_limiter`, giving names like `noa_rate_limiter_checks_total`. */
  constructor(packageName: string, registry?: Registry) {
    // Duck-typed rather than instanceof, so a Registry of another prom-client copy still fits.
    const usable = (candidate: unknown): boolean => {
      const { getSingleMetric, registerMetric } = candidate as Partial<Registry>;
      return typeof getSingleMetric === 'function' && typeof registerMetric === 'function';
    };
    if (registry !== undefined && (registry === null || typeof registry !== 'object' || !usable(registry))) {
      throw new ConfigError('metrics', [{ path: 'registry', message: 'not a prom-client Registry' }]);
    }
    this.#registry = registry;
    this.#prefix = `noa_${packageName}_`;
    this.enabled = registry !== undefined;
  }

  counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): CounterMetric<L> {
    const metric = this.#metric(
      name,
      'counter',
      labelNames,
      (registers) => new Counter({ name: this.#prefix + name, help, labelNames, registers }),
    );
    if (!metric) return noopMetric;
    return { inc: (labels = {}, value = 1) => metric.inc(labels, value) };
  }

  gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): GaugeMetric<L> {
    const metric = this.#metric(
      name,
      'gauge',
      labelNames,
      (registers) => new Gauge({ name: this.#prefix + name, help, labelNames, registers }),
    );
    if (!metric) return noopMetric;
    return {
      set: (labels, value) => metric.set(labels, value),
      inc: (labels = {}, value = 1) => metric.inc(labels, value),
      dec: (labels = {}, value = 1) => metric.dec(labels, value),
    };
  }

  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    buckets: number[] = latencyBucketsSeconds,
  ): HistogramMetric<L> {
    const metric = this.#metric(
      name,
      'histogram',
      labelNames,
      (registers) => new Histogram({ name: this.#prefix + name, help, labelNames, buckets, registers }),
    );
    if (!metric) return noopMetric;
    return { observe: (labels, value) => metric.observe(labels, value) };
  }

  /**
   * The metric already on the registry under this name (another instance made it), else a new one.
   * One of another type or label names is refused here: shared, it would throw on the first
   * observation (`metric.set is not a function`, `label … is not included`) in a hot path.
   */
  #metric<M>(
    name: string,
    type: 'counter' | 'gauge' | 'histogram',
    labelNames: readonly string[],
    create: (registers: Registry[]) => M,
  ): M | undefined {
    if (!this.#registry) return undefined;
    const fullName = this.#prefix + name;
    const existing = this.#registry.getSingleMetric(fullName) as
      | { type?: unknown; labelNames?: readonly string[] }
      | undefined;
    if (!existing) return create([this.#registry]);
    const existingLabels = existing.labelNames ?? [];
    const sameLabels =
      existingLabels.length === labelNames.length &&
      labelNames.every((label) => existingLabels.includes(label));
    if (existing.type !== type || !sameLabels) {
      const found = `${String(existing.type)} [${existingLabels.join(', ')}]`;
      throw new ConfigError('metrics', [
        {
          path: 'registry',
          message: `${fullName} is already registered as a ${found}, not a ${type} [${labelNames.join(', ')}]`,
        },
      ]);
    }
    return existing as M;
  }
}

/**
 * One instance's share of a gauge that the instances on one registry add up (caches, limiters):
 * `set` adds the change of this instance's value, `release` takes its value out for good. A plain
 * `set` on the shared series would report only the instance that wrote last.
 */
export class GaugeShare<L extends string = string> {
  readonly #gauge: GaugeMetric<L>;
  readonly #labels: Labels<L>;
  #value = 0;
  #released = false;

  constructor(gauge: GaugeMetric<L>, labels: Labels<L> = {}) {
    this.#gauge = gauge;
    this.#labels = labels;
  }

  /**
   * This instance's value now (ignored after {@link release}). A value that is not finite is
   * ignored: added to the shared gauge it would make the sum NaN for every instance, for good.
   */
  set(value: number): void {
    if (this.#released || value === this.#value || !Number.isFinite(value)) return;
    this.#gauge.inc(this.#labels, value - this.#value);
    this.#value = value;
  }

  /** Takes this instance's value out of the gauge; later `set` calls change nothing. */
  release(): void {
    this.set(0);
    this.#released = true;
  }
}

/**
 * One instance's value in a gauge series that several instances on one registry report together
 * (see {@link gaugeVote}): `set(undefined)` leaves this instance out while it does not know.
 */
export interface GaugeVote {
  /** This instance's value now; `undefined` (or a value that is not finite) leaves it out. */
  set(value: number | undefined): void;
  /** Takes this instance out for good (at `close()`); later `set` calls change nothing. */
  release(): void;
}

/** The part of a prom-client `Gauge` a {@link gaugeVote} writes. */
export interface VotedGauge {
  set(labels: Record<string, string>, value: number): void;
  remove(labels: Record<string, string>): void;
}

const noopVote: GaugeVote = { set: () => {}, release: () => {} };

/** The instances' values of each voted series, per gauge object (one per registry and name). */
const gaugeVotes = new WeakMap<object, Map<string, Map<GaugeVote, number>>>();

/**
 * A vote on the series `labels` of `gauge` (no gauge: a no-op), which shows `combine` of the values
 * of the instances that know one (the sum of clusters taking a replica, the largest lag, the
 * minimum of workers' "backend up"), and is removed while none does: no series rather than a
 * value nobody measured, and none left behind by closed instances. A plain `set` on a shared
 * series would report whichever instance wrote last, and keep it after that one closed; a sum is
 * cheaper with {@link GaugeShare}. `onLastReleased` runs when the last vote of the series is
 * released.
 */
export function gaugeVote(
  gauge: VotedGauge | undefined,
  labels: Record<string, string>,
  combine: (values: number[]) => number,
  onLastReleased?: () => void,
): GaugeVote {
  if (gauge === undefined) return noopVote;
  let series = gaugeVotes.get(gauge);
  if (series === undefined) {
    series = new Map();
    gaugeVotes.set(gauge, series);
  }
  const key = JSON.stringify(labels);
  const seriesVotes = series.get(key) ?? new Map<GaugeVote, number>();
  series.set(key, seriesVotes);
  const publish = () => {
    if (seriesVotes.size === 0) gauge.remove(labels);
    else gauge.set(labels, combine([...seriesVotes.values()]));
  };
  let released = false;
  const vote: GaugeVote = {
    set(value) {
      if (released || seriesVotes.get(vote) === value) return;
      if (value === undefined || !Number.isFinite(value)) {
        if (!seriesVotes.has(vote)) return;
        seriesVotes.delete(vote);
      } else seriesVotes.set(vote, value);
      publish();
    },
    release() {
      if (released) return;
      released = true;
      seriesVotes.delete(vote);
      publish();
      if (seriesVotes.size === 0) onLastReleased?.();
    },
  };
  return vote;
}
