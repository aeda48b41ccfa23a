import { CountMinSketch } from './count-min-sketch.js';
import type { EvictionPolicy } from './eviction-policy.js';
import { first } from './key-order.js';

type Segment = 'window' | 'probation' | 'protected';

/**
 * W-TinyLFU, as in Caffeine: new keys enter a small LRU window; a key leaving the window is
 * admitted to the main SLRU (probation → protected) only if the count-min sketch says it is
 * more popular than the probation victim it would displace. One-hit wonders and scans stay in
 * the window and never flush the popular set. The window's share adapts by hill climbing on
 * the observed hit rate (bigger when recency pays, smaller when frequency does).
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
  // Hill climbing state.
  #hits = 0;
  #requests = 0;
  #previousHitRate = 0;
  #step: number;
  readonly #samplePeriod: number;

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
    this.#sketch = new CountMinSketch(this.#capacity);
    this.#windowCapacity = Math.max(1, Math.round(this.#capacity * 0.01));
    this.#protectedCapacity = Math.round((this.#capacity - this.#windowCapacity) * 0.8);
    this.#step = Math.max(1, Math.round(this.#capacity * 0.0625));
    this.#samplePeriod = Math.max(100, this.#capacity * 10);
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
    if (this.#sketch.frequency(candidate) > this.#sketch.frequency(victim)) {
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

  #sample(hit: boolean): void {
    this.#requests += 1;
    if (hit) this.#hits += 1;
    if (this.#requests < this.#samplePeriod) return;
    const hitRate = this.#hits / this.#requests;
    // Keep climbing in the same direction while the hit rate improves; reverse otherwise.
    if (hitRate < this.#previousHitRate) this.#step = -this.#step;
    this.#previousHitRate = hitRate;
    this.#hits = 0;
    this.#requests = 0;
    const limit = Math.max(1, Math.round(this.#capacity * 0.8));
    this.#windowCapacity = Math.min(limit, Math.max(1, this.#windowCapacity + this.#step));
    this.#protectedCapacity = Math.round((this.#capacity - this.#windowCapacity) * 0.8);
    this.#shrinkProtected();
    // Decay the step so the window settles.
    const decayed = Math.trunc(this.#step * 0.9);
    this.#step = decayed === 0 ? Math.sign(this.#step) : decayed;
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
