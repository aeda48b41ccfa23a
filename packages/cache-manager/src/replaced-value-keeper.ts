import type { CacheEngine } from './cache-engine.js';
import type { FactoryRun } from './factory-runs.js';
import type { RedisTier } from './l2/redis-tier.js';

/** A value in Redis that a factory run will replace by compare-and-set. */
export interface ReplacedValue {
  fullKey: string;
  /** The bytes the run read (`KeyLoad.l2Held`): the value is kept only while the key holds them. */
  held: Buffer;
  /** Its tags: their sets are kept with it, so that a tag delete during the run finds it. */
  tags: readonly string[];
  /** The run: once superseded its write is not tried, and the value is not kept for it. */
  run: FactoryRun;
}

/** Sends one extension of each value (in batches, for many), in the order of `values`. */
export type ExtendEach = (
  values: readonly ReplacedValue[],
  extend: (value: ReplacedValue) => Promise<boolean | undefined>,
) => Promise<(boolean | undefined)[]>;

const extendAtOnce: ExtendEach = (values, extend) => Promise.all(values.map(extend));

/**
 * How many times the trusted time (`max(lock.leaseMs, hardTimeoutMs)`) a run may last with its
 * replaced values kept: far past the lease (the longest run trusted, after which another
 * instance may compute the key anyway), so only a run that looks hung loses its extension.
 */
export const hungAfterTrusted = 10;

/**
 * Makes the values a factory run will replace by compare-and-set outlive the run in Redis:
 * their physical TTL (the end of their grace, `ttlMs + graceMs` after their write) may come
 * before the run's end, and the write, finding the key gone, would fail (not cached, the next
 * call running the factory again). Absence cannot be taken for "unchanged" instead: Redis cannot
 * tell an expiry from another instance's delete, which must win. So a value is kept (with its
 * tag sets) only while its key holds the very bytes the run read: a delete, tag delete or
 * another write during the run still makes its write lose (see `RedisTier.extendIfUnchanged`).
 *
 * The first extension is sent as the run starts, beside the factory: it lasts for the longest
 * run that is trusted (`lock.leaseMs`, or the hard timeout when longer, since a late result is
 * still written) and the write's own deadline (`operationTimeoutMs`). A run still going once
 * that trusted time has passed renews it (the renewal then has the write's deadline to land
 * before the extension ends), and again every `max(trusted time, operationTimeoutMs)` while the
 * run lasts: one script call per value and period. A run shorter than the trusted time sends
 * nothing more. Renewals stop as the run settles ({@link stop}; so does the first extension's
 * sending of its later batches), when its key changed (the script found other bytes: its write
 * will lose), when it is superseded, when the cache closes, or once the run has lasted
 * {@link hungAfterTrusted} times the trusted time: a factory that never settles (a fetch with no
 * timeout of its own) would otherwise keep a value no reader serves, at one script call per
 * value and period, for as long as the process lives. That is logged once as a warning naming
 * the keys (the factory looks hung); the values then keep the extension last sent, and a write
 * that comes after it ends loses (not cached), as when an extension fails. A longer TTL is left as it is (PEXPIRE GT). Readers judge freshness and grace by the
 * entry's own times, so a value kept past its grace is served by none. A failure (Redis down)
 * is counted and logged by the guard (`refresh_extend`) and fails nothing: the next period
 * tries again, and the write is tried as before.
 */
export class ReplacedValueKeeper {
  readonly #engine: CacheEngine;
  readonly #tier: RedisTier;
  readonly #each: ExtendEach;
  /** The values still kept. */
  #values: readonly ReplacedValue[];
  /** Between two renewals; a renewal's TTL is this and the operation deadline. */
  readonly #periodMs: number;
  /** How long the run has lasted when the next renewal is due (by the schedule, from its start). */
  #runningMs: number;
  /** From this running time on, no renewal: the run looks hung (see {@link hungAfterTrusted}). */
  readonly #hungAfterMs: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The extension in flight (settled when none is); never rejects. */
  #sent: Promise<void>;

  constructor(
    engine: CacheEngine,
    tier: RedisTier,
    hardTimeoutMs: number | undefined,
    values: readonly ReplacedValue[],
    each: ExtendEach = extendAtOnce,
  ) {
    this.#engine = engine;
    this.#tier = tier;
    this.#each = each;
    this.#values = values;
    const trustedMs = Math.max(engine.options.lock.leaseMs, hardTimeoutMs ?? 0);
    // At least the deadline: a lease far shorter than it would otherwise renew every few ms.
    this.#periodMs = Math.max(trustedMs, engine.options.operationTimeoutMs);
    this.#runningMs = trustedMs;
    this.#hungAfterMs = hungAfterTrusted * trustedMs;
    this.#sent = this.#extend(trustedMs + engine.options.operationTimeoutMs, trustedMs);
  }

  /**
   * The run settled: no renewal from now on (no timer left), and the extension in flight, the
   * first one or a renewal, sends no more of its batches: the write replaces those values at
   * once. Resolves once the batch in flight, if any, is answered, before the run's write;
   * never rejects. A value whose extension was not sent keeps its own physical TTL, the end of
   * its grace: its write is sent now, so it is lost only if that ends before the write lands,
   * as when an extension fails; waiting for the extension instead cost a short `getOrSetMany`
   * run over 10,000 values 39 round trips of 256 script calls before its first write.
   */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#sent;
  }

  /**
   * Sends one extension to `ttlMs`, then schedules the next `nextMs` after its sending. It
   * stops sending as the run settles or the cache closes, and skips the values whose run was
   * superseded meanwhile (a delete here, say): its later batches (`getOrSetMany`'s, 256 values
   * each, one after another) would only delay the run's write and its callers, or reach a
   * client its owner is closing.
   */
  async #extend(ttlMs: number, nextMs: number): Promise<void> {
    const sentAt = performance.now();
    const values = this.#values;
    const kept = await this.#each(values, (value) =>
      this.#stopped || this.#engine.closed || value.run.superseded
        ? Promise.resolve(undefined)
        : this.#tier.extendIfUnchanged(value.fullKey, value.held, ttlMs, value.tags).catch(
            // `onBackendError: 'throw'`: already counted and logged; the run goes on.
            () => undefined,
          ),
    ).catch(() => values.map(() => undefined));
    // false: the key holds other bytes (or none), so the run's write will lose: nothing to keep.
    this.#values = values.filter((_, index) => kept[index] !== false);
    this.#schedule(nextMs - (performance.now() - sentAt));
  }

  #schedule(delayMs: number): void {
    // Closed while the extension was in flight: no timer is left behind (it would only find it closed).
    if (this.#stopped || this.#engine.closed || this.#values.length === 0) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#values = this.#values.filter((value) => !value.run.superseded);
        if (this.#stopped || this.#engine.closed || this.#values.length === 0) return;
        if (this.#runningMs >= this.#hungAfterMs) {
          this.#givenUp();
          return;
        }
        this.#runningMs += this.#periodMs;
        this.#sent = this.#extend(this.#periodMs + this.#engine.options.operationTimeoutMs, this.#periodMs);
      },
      Math.max(0, delayMs),
    );
    this.#timer.unref();
  }

  /** The run looks hung: no more renewals, said once (a keeper belongs to one run). */
  #givenUp(): void {
    const keys = this.#values.map((value) => value.fullKey);
    this.#engine.logger.warn(
      'factory still running long past lock.leaseMs (it looks hung): the values it replaces are no longer kept in Redis',
      {
        keys: keys.slice(0, 10),
        ...(keys.length > 10 ? { more: keys.length - 10 } : {}),
        runningMs: this.#runningMs,
      },
    );
    this.#values = [];
  }
}
