import { CountMinSketch } from './count-min-sketch.js';
import type { EvictionPolicy } from './eviction-policy.js';
import { HillClimber } from './hill-climber.js';
import { first } from './key-order.js';

type Segment = 'window' | 'probation' | 'protected';

/** A candidate seen this often in the sketch's current sample is warm (see #admitWarmAnyway). */
const WARM_FREQUENCY = 3;

/**
 * W-TinyLFU, as in Caffeine: new keys enter a small LRU window; a key leaving the window is
 * admitted to the main SLRU (probation → protected) only if the count-min sketch says it is
 * more popular than the probation victim it would displace. One-hit wonders and scans stay in
 * the window and never flush the popular set. The window's share adapts by hill climbing on
 * the observed hit rate (bigger when recency pays, smaller when frequency does; see
 * {@link HillClimber}).
 */
export class AdaptivePolicy implements EvictionPolicy {
  readonly name = 'adaptive';
  readonly #sketch: CountMinSketch;
  readonly #capacity: number;
  readonly #segments = new Map<string, Segment>();
  readonly #window = new Set<string>();
  readonly #probation = new Set<string>();
  readonly #protected = new Set<string>();
  #windowCapacity: number;
  #protectedCapacity: number;
  readonly #climber: HillClimber;
  #warmUpRequests: number;
  #random = 0x2545f491;

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
    this.#sketch = new CountMinSketch(this.#capacity);
    this.#windowCapacity = Math.max(1, Math.round(this.#capacity * 0.01));
    this.#protectedCapacity = Math.round((this.#capacity - this.#windowCapacity) * 0.8);
    const samplePeriod = Math.max(100, this.#capacity * 10);
    this.#climber = new HillClimber(this.#capacity, this.#windowCapacity, samplePeriod);
    this.#warmUpRequests = samplePeriod;
  }

  /** Current window size in entries (exposed for tests and the hit-rate table). */
  get windowCapacity(): number {
    return this.#windowCapacity;
  }

  touch(key: string): void {
    this.#sketch.increment(key);
    this.#sample(true);
    const segment = this.#segments.get(key);
    if (segment === 'window') {
      moveToEnd(this.#window, key);
    } else if (segment === 'protected') {
      moveToEnd(this.#protected, key);
    } else if (segment === 'probation') {
      this.#probation.delete(key);
      this.#protected.add(key);
      this.#segments.set(key, 'protected');
      this.#shrinkProtected();
    }
  }

  recordMiss(key: string): void {
    this.#sketch.increment(key);
    this.#sample(false);
  }

  insert(key: string): string[] {
    if (this.#segments.has(key)) {
      this.touch(key);
      return [];
    }
    this.#window.add(key);
    this.#segments.set(key, 'window');
    const evicted: string[] = [];
    while (this.#window.size > this.#windowCapacity) {
      const candidate = first(this.#window)!;
      this.#window.delete(candidate);
      const loser = this.#admit(candidate);
      if (loser !== undefined) evicted.push(loser);
    }
    // The window may have grown under hill climbing while main was full: trim main.
    while (this.#segments.size > this.#capacity) {
      const victim = first(this.#probation) ?? first(this.#protected) ?? first(this.#window)!;
      this.remove(victim);
      evicted.push(victim);
    }
    return evicted;
  }

  update(key: string): void {
    this.touch(key);
  }

  remove(key: string): void {
    const segment = this.#segments.get(key);
    if (segment === undefined) return;
    this.#segments.delete(key);
    this.#set(segment).delete(key);
  }

  victim(): string | undefined {
    return first(this.#probation) ?? first(this.#window) ?? first(this.#protected);
  }

  hottest(limit: number): string[] {
    const ordered = [
      ...[...this.#protected].reverse(),
      ...[...this.#probation].reverse(),
      ...[...this.#window].reverse(),
    ];
    return ordered.slice(0, limit);
  }

  clear(): void {
    this.#segments.clear();
    this.#window.clear();
    this.#probation.clear();
    this.#protected.clear();
    this.#sketch.clear();
  }

  /** Moves a window evictee into main if it wins against main's victim; returns the loser. */
  #admit(candidate: string): string | undefined {
    const mainSize = this.#probation.size + this.#protected.size;
    if (mainSize < this.#capacity - this.#windowCapacity) {
      this.#probation.add(candidate);
      this.#segments.set(candidate, 'probation');
      return undefined;
    }
    const victim = first(this.#probation) ?? first(this.#protected);
    if (victim === undefined) {
      this.#segments.delete(candidate);
      return candidate;
    }
    const candidateFrequency = this.#sketch.frequency(candidate);
    if (candidateFrequency > this.#sketch.frequency(victim) || this.#admitWarmAnyway(candidateFrequency)) {
      this.remove(victim);
      this.#probation.add(candidate);
      this.#segments.set(candidate, 'probation');
      return victim;
    }
    this.#segments.delete(candidate);
    return candidate;
  }

  #shrinkProtected(): void {
    while (this.#protected.size > this.#protectedCapacity) {
      const demoted = first(this.#protected)!;
      this.#protected.delete(demoted);
      this.#probation.add(demoted);
      this.#segments.set(demoted, 'probation');
    }
  }

  /**
   * Admits one warm candidate in 128 even though it lost. Otherwise a probation head whose
   * estimate stays at or above every newcomer's (a key that was hot, whose counter only ages
   * at the sketch's halving, or one sharing counters with a hot key) rejects them all until it
   * ages. Caffeine does the same (for hash flooding). The generator is a seeded LCG so hit
   * rates are reproducible; nothing here needs unpredictability.
   */
  #admitWarmAnyway(candidateFrequency: number): boolean {
    if (candidateFrequency < WARM_FREQUENCY) return false;
    this.#random = (Math.imul(this.#random, 1_664_525) + 1_013_904_223) >>> 0;
    return this.#random >>> 25 === 0;
  }

  #sample(hit: boolean): void {
    if (this.#warmUpRequests > 0) {
      // While the cache fills, the hit rate rises whatever the window does and the climber
      // would read that as "growing pays". A cache bounded by bytes may never hold
      // `capacity` entries, so the wait is also bounded by one sample period.
      this.#warmUpRequests = this.#segments.size < this.#capacity ? this.#warmUpRequests - 1 : 0;
      if (this.#warmUpRequests > 0) return;
    }
    if (!this.#climber.record(hit)) return;
    this.#windowCapacity = this.#climber.window;
    this.#protectedCapacity = Math.round((this.#capacity - this.#windowCapacity) * 0.8);
    this.#shrinkProtected();
  }

  #set(segment: Segment): Set<string> {
    if (segment === 'window') return this.#window;
    if (segment === 'probation') return this.#probation;
    return this.#protected;
  }
}

function moveToEnd(set: Set<string>, key: string): void {
  set.delete(key);
  set.add(key);
}
