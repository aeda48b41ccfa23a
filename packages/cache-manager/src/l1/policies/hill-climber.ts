/** Share of the capacity the window moves by per step (Caffeine's 6.25%). */
const STEP_SHARE = 0.0625;
/**
 * A hit-rate change this large (absolute) while the window stood still means the workload
 * itself changed: explore again instead of staying at the floor.
 */
const RESTART_CHANGE = 0.05;
/** How many standard errors a change must exceed to count as a gain or a loss. */
const NOISE_Z = 1;

/**
 * Sizes W-TinyLFU's window by hill climbing on the hit rate of successive samples.
 *
 * Caffeine's climber keeps moving in the direction that last looked better. On stable skewed
 * traffic the hit rate barely depends on the window (a few tenths of a percent per step, less
 * than the sampling noise of ±0.7 points in 10,000 requests), so that climber random-walks
 * and drifts into large windows that cost frequency hits. This one treats a change within one
 * standard error of the binomial noise as no evidence, and with no evidence steps toward the
 * smallest window, W-TinyLFU's best choice for frequency-skewed traffic: the window grows only
 * while growing measurably pays (recency-heavy traffic), and shrinks back when it stops paying.
 * The step does not decay, so the window keeps following a workload that changes.
 */
export class HillClimber {
  readonly #samplePeriod: number;
  readonly #step: number;
  readonly #minWindow: number;
  readonly #maxWindow: number;
  #window: number;
  #direction = 1;
  #movedLastSample = false;
  #hits = 0;
  #requests = 0;
  #previousHitRate: number | undefined;

  /**
   * @param capacity the cache's entry capacity (the window stays below it).
   * @param initialWindow the starting window, also its floor.
   * @param samplePeriod requests per hit-rate sample.
   */
  constructor(capacity: number, initialWindow: number, samplePeriod: number) {
    this.#samplePeriod = samplePeriod;
    this.#step = Math.max(1, Math.round(capacity * STEP_SHARE));
    this.#maxWindow = Math.max(1, capacity - 1);
    this.#minWindow = Math.min(this.#maxWindow, Math.max(1, initialWindow));
    this.#window = this.#minWindow;
  }

  /** The window size in entries. */
  get window(): number {
    return this.#window;
  }

  /** Records one request; returns true when it closed a sample that changed the window. */
  record(hit: boolean): boolean {
    this.#requests += 1;
    if (hit) this.#hits += 1;
    if (this.#requests < this.#samplePeriod) return false;
    const hitRate = this.#hits / this.#requests;
    const previous = this.#previousHitRate;
    const samples = this.#requests;
    this.#previousHitRate = hitRate;
    this.#hits = 0;
    this.#requests = 0;
    if (previous === undefined) return this.#move(1); // the first sample is the baseline: probe
    const change = hitRate - previous;
    if (!this.#movedLastSample) {
      // The window stood still, so the change is the workload's own, not the window's.
      if (Math.abs(change) >= RESTART_CHANGE)
        return this.#move(change >= 0 ? this.#direction : -this.#direction);
      return this.#move(-1);
    }
    const meanRate = (hitRate + previous) / 2;
    const noise = NOISE_Z * Math.sqrt((2 * meanRate * (1 - meanRate)) / samples);
    if (change >= noise) return this.#move(this.#direction);
    if (change <= -noise) return this.#move(-this.#direction);
    return this.#move(-1);
  }

  #move(direction: number): boolean {
    this.#direction = direction;
    const next = Math.min(this.#maxWindow, Math.max(this.#minWindow, this.#window + direction * this.#step));
    this.#movedLastSample = next !== this.#window;
    this.#window = next;
    return this.#movedLastSample;
  }
}
