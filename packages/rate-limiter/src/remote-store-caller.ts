import {
  type BreakerOptions,
  type BreakerState,
  type CircuitBreaker,
  type Clock,
  createCircuitBreaker,
  GaugeShare,
  type Logger,
  LogSampler,
  PartAnswers,
  PartFailure,
  startDeadline,
  TimeoutError,
  unlessPartFailure,
  withDeadline,
} from '@noa/core';
import type { AutoBlockPolicy } from './auto-block.js';
import type { Decision } from './decision.js';
import { isKeyValueError, uncountedIfKeyValue } from './key-value-error.js';
import type { LimiterMetrics } from './limiter-metrics.js';
import type { FailMode } from './limiter-options.js';
import { capacityOf, type LimitPolicy } from './policy.js';
import type { DecisionSource } from './result.js';
import type { MemoryStore } from './stores/memory-store.js';
import {
  admitted,
  type ConsumeOptions,
  type ConsumeOutcome,
  type ConsumeRequest,
  type RateLimitStore,
} from './stores/store.js';

/** The limits a call checks, and their per-instance share for the local fallback. */
export interface CallRule {
  limits: LimitPolicy[];
  fallbackLimits: LimitPolicy[];
}

/** Receives the outcome of one request and who decided it. */
export type Settle = (outcome: ConsumeOutcome, source: DecisionSource) => void;

/** One key's requests of a tick; also the store's request for them (key, limits, costs). */
interface Pending extends ConsumeRequest {
  /** The store key. */
  readonly key: string;
  readonly limits: LimitPolicy[];
  readonly rule: CallRule;
  readonly costs: number[];
  readonly settle: Settle[];
}

/** Options of {@link RemoteStoreCaller} (already validated by the limiter). */
export interface RemoteStoreCallerOptions {
  store: RateLimitStore;
  failMode: FailMode;
  deadlineMs: number;
  breaker: BreakerOptions;
  batch: boolean;
  block: AutoBlockPolicy | undefined;
  metrics: LimiterMetrics;
  logger: Logger;
  /** Time source of the log sampling (the limiter's clock). */
  clock: Clock;
  /**
   * During an outage, at most one warning per this many ms for each kind: failed checks, failed
   * adjustments, and the breaker's probes (half-open, open again, every `halfOpenAfterMs`). Each
   * failed call was a line: a Redis killed under 700 requests a second gave 1,458 lines in 2 s,
   * then two a second per limiter for as long as it was down.
   */
  logIntervalMs: number;
  fallbackStore: MemoryStore;
}

/** Pending distinct keys that trigger a store call without waiting for the end of the tick. */
const earlyFlushKeys = 32;

/**
 * {@link earlyFlushKeys} for a store whose parts answer separately (a Cluster): its batch is
 * split over the masters, which work in parallel, so a whole tick goes as one batch, one write
 * per master (flushing at 32 keys made twice the writes, each master's share then ~10 keys, for
 * no overlap gained). Still bounded, so a flood of keys is not held to the end of its tick.
 */
const earlyFlushKeysEach = 256;

/**
 * How long a probe's unanswered PING holds back the next one (ms): see `#probe`. A PING kept by a
 * frozen server is then one a minute, not one per `halfOpenAfterMs`.
 */
const unansweredPingMaxMs = 60_000;

/** `failMode: 'closed'` tells refused clients to come back after this long. */
const closedRetryAfterMs = 1_000;

/**
 * The longest deadline of a late check's refund (ms; the limiter's own deadline when longer):
 * nobody waits for it, but it must not wait without end for a store that does not answer.
 */
const lateRefundMaxMs = 1_000;

/**
 * Calls a remote store (Redis) so that a check never waits on it for longer than the deadline:
 * batches the checks of a tick (one key's requests together, keys in shared calls), runs each
 * call under a deadline and a circuit breaker, and answers by the fail mode when the call fails,
 * times out or is not attempted.
 */
export class RemoteStoreCaller {
  readonly #store: RateLimitStore;
  readonly #failMode: FailMode;
  readonly #deadlineMs: number;
  readonly #breaker: CircuitBreaker;
  readonly #batch: boolean;
  readonly #block: AutoBlockPolicy | undefined;
  readonly #metrics: LimiterMetrics;
  readonly #logger: Logger;
  /** Warnings of failed checks, failed adjustments and breaker probes (see logIntervalMs). */
  readonly #failureLog: LogSampler;
  readonly #adjustFailureLog: LogSampler;
  readonly #probeLog: LogSampler;
  #breakerState: BreakerState = 'closed';
  /** See {@link lastFailure}. */
  #lastFailure: unknown;
  readonly #fallbackStore: MemoryStore;
  readonly #pending = new Map<string, Pending>();
  readonly #earlyFlushKeys: number;
  #flushScheduled = false;
  /**
   * When the store's parts answer separately (a Cluster): when a part last answered in time, so
   * that one part's failure is not counted by the breaker (core's `PartAnswers`). Undefined on a
   * store answering as one.
   */
  readonly #parts: PartAnswers | undefined;

  /**
   * This limiter's part of the fallback gauge (1 while its breaker is not closed): limiters
   * sharing a registry share the gauge, and one whose store recovers (or a new one) must not hide
   * another that still bypasses its store.
   */
  readonly #bypassing: GaugeShare;

  /** When the probe's last PING was sent, while it has neither been answered nor failed (see {@link #probe}). */
  #pingSentAt: number | undefined;

  constructor(options: RemoteStoreCallerOptions) {
    this.#store = options.store;
    this.#failMode = options.failMode;
    this.#deadlineMs = options.deadlineMs;
    this.#batch = options.batch;
    this.#block = options.block;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    const sampling = { intervalMs: options.logIntervalMs, clock: options.clock };
    this.#failureLog = new LogSampler(sampling);
    this.#adjustFailureLog = new LogSampler(sampling);
    this.#probeLog = new LogSampler(sampling);
    this.#fallbackStore = options.fallbackStore;
    this.#earlyFlushKeys =
      this.#store.keysPerCall ??
      (this.#store.consumeEach === undefined ? earlyFlushKeys : earlyFlushKeysEach);
    this.#bypassing = new GaugeShare(this.#metrics.fallback);
    const clock = options.clock;
    this.#parts =
      this.#store.consumeEach !== undefined && this.#store.keysPerCall === undefined
        ? new PartAnswers(
            () => clock.now(),
            () => this.#breaker.state === 'closed',
          )
        : undefined;
    this.#breaker = createCircuitBreaker(`rate-limit store (${this.#store.kind})`, options.breaker, {
      probe: this.#probe(),
    });
    this.#breaker.onStateChange((state) => {
      this.#bypassing.set(state === 'closed' ? 0 : 1);
      const previous = this.#breakerState;
      this.#breakerState = state;
      const fields = { store: this.#store.kind, failMode: this.#failMode };
      if (state === 'closed') {
        // The outage is over: its counts of lines held back go out with this line, and the next
        // outage's first lines go out at once.
        const suppressed = this.#failureLog.reset() + this.#adjustFailureLog.reset() + this.#probeLog.reset();
        this.#logger.info(
          'rate-limit store breaker closed: store back in use',
          suppressed === 0 ? fields : { ...fields, suppressed },
        );
      } else if (previous === 'closed') {
        this.#logger.warn(`rate-limit store breaker ${state}: fail mode applies`, fields);
      } else {
        this.#probeLog.log(
          this.#logger,
          'warn',
          `rate-limit store breaker ${state}: fail mode applies`,
          fields,
        );
      }
    });
  }

  /**
   * The breaker's probe: the store's `ping()` (a PING of its Redis) under the checks' deadline,
   * so no batch of user checks is the half-open trial that waits out the deadline on a store still
   * stalled, and checks keep the fail mode's instant answer until the PING comes back. On a store
   * whose parts answer separately (a Cluster) its `pingAnyPart()`: a PING of every master that
   * succeeds when any answers, as the breaker there counts a failure only when no part answered
   * (`ping()` asks that every master answer, and would hold the breaker open while one master is
   * down though the others answer). None (a user call is the trial, as before) for a store
   * without the method its kind needs.
   */
  #probe(): ((signal: AbortSignal) => Promise<unknown>) | undefined {
    const store = this.#store;
    const ping = this.#parts !== undefined ? store.pingAnyPart : store.ping;
    if (ping === undefined) return undefined;
    const operation = `rate-limit store probe (PING) on ${store.kind}`;
    return () => {
      // A PING sent by an earlier probe and still unanswered (a server frozen with its connection
      // open: ioredis keeps the command until the connection ends) fails this probe at once
      // instead of sending another, for up to a minute: a store whose PING is lost for good while
      // later ones answer (not Redis, whose replies come in order) is probed again after that.
      const now = performance.now();
      if (this.#pingSentAt !== undefined && now - this.#pingSentAt < unansweredPingMaxMs)
        return Promise.reject(new TimeoutError(operation, this.#deadlineMs));
      this.#pingSentAt = now;
      const sent = Promise.resolve().then(() => ping.call(store));
      const answered = () => {
        if (this.#pingSentAt === now) this.#pingSentAt = undefined;
      };
      sent.then(answered, answered);
      return withDeadline(sent, this.#deadlineMs, operation).then(() => {
        // A part answered: the stalled part's failures right after the breaker closes are its own.
        this.#parts?.answered();
      });
    };
  }

  /** Takes this limiter out of the fallback gauge (its limiter is closed). */
  close(): void {
    this.#bypassing.release();
  }

  /** True while the breaker is not closed (the store is bypassed or being probed). */
  get fallbackActive(): boolean {
    return this.#breaker.state !== 'closed';
  }

  /** The breaker's state, for `health()`. */
  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  /** The error of the last check that failed since the last one the store answered, for `health()`. */
  get lastFailure(): unknown {
    return this.#lastFailure;
  }

  /** Queues one request of `cost` points on `storeKey`; `settle` receives its outcome. */
  submit(storeKey: string, rule: CallRule, cost: number, settle: Settle): void {
    if (!this.#batch) {
      this.#call([{ key: storeKey, limits: rule.limits, rule, costs: [cost], settle: [settle] }]);
      return;
    }
    const pending = this.#pending.get(storeKey);
    if (pending !== undefined && pending.rule === rule) {
      pending.costs.push(cost);
      pending.settle.push(settle);
      return;
    }
    if (pending !== undefined) this.#call([pending]);
    this.#pending.set(storeKey, {
      key: storeKey,
      limits: rule.limits,
      rule,
      costs: [cost],
      settle: [settle],
    });
    // A full call's worth of keys goes at once, so the store works while this process is still
    // handling other replies (waiting for the tick's end would make both sides take turns).
    if (this.#pending.size >= this.#earlyFlushKeys) {
      this.#flush();
      return;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  #flush(): void {
    const batch = [...this.#pending.values()];
    this.#pending.clear();
    if (batch.length > 0) this.#call(batch);
  }

  /**
   * Sends the batch's keys together (`consumeMany`: one shared script call on a standalone Redis,
   * whose batches are at most its `keysPerCall`; on a Cluster, `consumeEach`: a call per key or
   * per slot, one write per master), under one deadline and one breaker decision.
   */
  #call(batch: Pending[]): void {
    const store = this.#store;
    if (store.consumeEach !== undefined && batch.length > (store.keysPerCall ?? 1)) {
      this.#callEach(batch);
      return;
    }
    const started = performance.now();
    // The store learns when this call stops mattering, so a late arrival is skipped, not counted.
    const options = { deadlineMs: this.#deadlineMs };
    const consumeAll = (): Promise<ConsumeOutcome[][]> =>
      store.consumeMany !== undefined
        ? store.consumeMany(batch, this.#block, options)
        : Promise.all(
            batch.map((pending) =>
              Promise.resolve(
                store.consume(pending.key, pending.limits, pending.costs, this.#block, options),
              ),
            ),
          );
    // The call itself, kept past its deadline: a reply that comes late may still have counted.
    let work: Promise<ConsumeOutcome[][]> | undefined;
    // The fail mode answers the batch; a failure the breaker did not count comes here too.
    const onFailure = (error: unknown): void => {
      this.#reportFailure(started, error);
      const refused = batch.map((pending) => this.#settleByFallback(pending));
      // Only a call that was sent and outlived its deadline can still be counted by Redis.
      if (work !== undefined && error instanceof TimeoutError)
        work.then(
          (results) => {
            for (let key = 0; key < batch.length; key += 1)
              this.#refundLate(batch[key]!, results[key]!, refused[key]!, started);
          },
          // It failed or was skipped after all (expired in Redis): nothing was counted.
          () => {},
        );
    };
    this.#breaker
      .execute(() => {
        work = consumeAll();
        // Judged after the replies already in are read: a busy process must not fail them.
        const call = withDeadline(work, this.#deadlineMs, `rate-limit check on ${this.#store.kind}`).catch(
          uncountedIfKeyValue,
        );
        return this.#parts ? this.#parts.counted(call) : call;
      })
      .then(
        (results) => {
          if (results instanceof PartFailure) {
            onFailure(results.error);
            return;
          }
          this.#observe(started, 'ok');
          for (let key = 0; key < batch.length; key += 1) {
            const pending = batch[key]!;
            const outcomes = results[key]!;
            for (let index = 0; index < pending.settle.length; index += 1)
              pending.settle[index]!(outcomes[index]!, 'store');
          }
        },
        (error: unknown) => onFailure(error),
      );
  }

  /**
   * Answers every request of `pending` by the fail mode; returns, per request, whether that
   * answer was a refusal (the points a late store reply counted for it must then go back).
   */
  #settleByFallback(pending: Pending): boolean[] {
    const refused: boolean[] = new Array(pending.settle.length);
    // Only 'local' counts in a real limiter; 'open' and 'closed' answer without knowing the quota.
    const source: DecisionSource = this.#failMode === 'local' ? 'fallback' : 'fail-mode';
    for (let index = 0; index < pending.settle.length; index += 1) {
      const outcome = this.#fallback(pending.key, pending.rule, pending.costs[index]!);
      refused[index] = !admitted(outcome);
      pending.settle[index]!(outcome, source);
    }
    return refused;
  }

  /**
   * A store reply that came after the fail mode had answered: the requests the fail mode refused
   * but the store counted get their points back, in one refund per key (the existing adjust
   * path), sent and forgotten: nobody waits for it, and a failed refund is only logged (debug).
   * A refund acts on the key's current window, so it is sent only while the window that counted
   * the points is still current (see {@link countingWindowMs}), under a deadline that makes Redis
   * skip it past that window's end (otherwise it would take points counted in the next window),
   * and at most {@link lateRefundMaxMs} (a bucket's refund too, which has no window).
   * `started` is when the call was sent: Redis ran it no earlier.
   */
  #refundLate(pending: Pending, outcomes: ConsumeOutcome[], refused: boolean[], started: number): void {
    let points = 0;
    let requests = 0;
    let windowLeftMs = Number.POSITIVE_INFINITY;
    for (let index = 0; index < refused.length; index += 1) {
      const outcome = outcomes[index];
      // A request of 0 points took nothing: it neither needs a refund nor bounds one.
      if (!refused[index] || outcome === undefined || !admitted(outcome) || pending.costs[index] === 0)
        continue;
      points += pending.costs[index]!;
      requests += 1;
      const limits = pending.limits;
      for (let limit = 0; limit < limits.length; limit += 1) {
        const decision = outcome.decisions[limit];
        if (decision !== undefined)
          windowLeftMs = Math.min(windowLeftMs, countingWindowMs(limits[limit]!, decision));
      }
    }
    if (points === 0 || this.#store.adjust === undefined) return;
    const fields = { store: this.#store.kind, key: pending.key, requests, points };
    // Whole ms, rounded down: a refund that may arrive after the window's end is not sent. A
    // bucket has no window (and a day's window is long): the refund still gets a deadline, or it
    // could wait for a master that stays connecting, or reach Redis whenever it comes back.
    const deadlineMs = Math.min(
      Math.max(lateRefundMaxMs, this.#deadlineMs),
      Math.floor(started + windowLeftMs - performance.now()),
    );
    if (deadlineMs < 1) {
      this.#logger.debug(
        "rate-limit check answered late after a fail-mode refusal; its window has ended, so it is not refunded (the next window's points are not its own)",
        fields,
      );
      return;
    }
    this.#metrics.lateRefunds.inc({}, requests);
    this.#logger.debug(
      'rate-limit check answered late after a fail-mode refusal; refunding its points',
      fields,
    );
    const options = { deadlineMs };
    Promise.resolve()
      .then(() =>
        this.#store.adjust!(
          pending.key,
          pending.limits,
          { operation: 'refund', points },
          this.#block,
          options,
        ),
      )
      .catch((error: unknown) =>
        this.#logger.debug('rate-limit refund of a late check failed', {
          ...fields,
          error: (error as Error)?.message,
        }),
      );
  }

  /**
   * {@link #call} on a store whose parts fail independently (a Redis Cluster's masters): each
   * key is answered as soon as its own part answers, and by the fail mode when its part fails or
   * has not answered by the deadline. The breaker counts the call as failed only when no part
   * answered, nor any other call's within core's `partAnswerWindowMs` (1 s), so one master down does not
   * send the other masters' keys to the fail mode; its own keys wait at most the deadline each
   * time.
   */
  #callEach(batch: Pending[]): void {
    const started = performance.now();
    const operation = `rate-limit check on ${this.#store.kind}`;
    const answered: boolean[] = new Array(batch.length).fill(false);
    let stored = 0;
    // Parts that answered with an error about their keys' values (see isKeyValueError).
    let answeredWithError = 0;
    let failed = 0;
    let firstError: unknown;
    // Per key, when the fail mode answered it: which of its requests it refused.
    const refusedByFallback: (boolean[] | undefined)[] = new Array(batch.length);
    const fallback = (key: number) => {
      if (answered[key]) return;
      answered[key] = true;
      refusedByFallback[key] = this.#settleByFallback(batch[key]!);
    };
    const fallbackRest = (error: unknown) => {
      let unanswered = 0;
      for (let key = 0; key < batch.length; key += 1) if (!answered[key]) unanswered += 1;
      if (unanswered === 0) return;
      this.#reportFailure(started, error, { keys: unanswered, of: batch.length });
      for (let key = 0; key < batch.length; key += 1) fallback(key);
    };
    this.#breaker
      .execute(
        () =>
          new Promise<void>((resolve, reject) => {
            // #call comes here only for a store that has consumeEach.
            const parts = this.#store.consumeEach!(batch, this.#block, { deadlineMs: this.#deadlineMs });
            let settled = 0;
            // Past the deadline the batch has been answered, timed and counted by the breaker:
            // parts that settle later only get refunds (below), they do not end the batch again.
            let timedOut = false;
            // After the replies already in are read (see core's startDeadline): a process busy
            // past the deadline must not give its keys the fail mode, and the breaker a failure.
            const cancelDeadline = startDeadline(
              this.#deadlineMs,
              () => {
                timedOut = true;
                const timeout = new TimeoutError(operation, this.#deadlineMs);
                if (stored + answeredWithError === 0 && !this.#parts?.otherPartAnswered()) reject(timeout);
                else {
                  fallbackRest(timeout);
                  resolve();
                }
              },
              { unref: true },
            );
            const done = () => {
              settled += 1;
              if (settled < parts.length || timedOut) return;
              cancelDeadline();
              if (stored + answeredWithError === 0 && !this.#parts?.otherPartAnswered()) reject(firstError);
              else {
                if (failed > 0) fallbackRest(firstError);
                else this.#observe(started, 'ok');
                resolve();
              }
            };
            for (let key = 0; key < parts.length; key += 1)
              parts[key]!.then(
                (outcomes) => {
                  stored += 1;
                  if (!timedOut) this.#parts?.answered();
                  const pending = batch[key]!;
                  if (!answered[key]) {
                    answered[key] = true;
                    for (let index = 0; index < pending.settle.length; index += 1)
                      pending.settle[index]!(outcomes[index]!, 'store');
                  } else {
                    // This master answered after the fail mode did (its deadline passed).
                    const refused = refusedByFallback[key];
                    if (refused !== undefined) this.#refundLate(pending, outcomes, refused, started);
                  }
                  done();
                },
                (error: unknown) => {
                  failed += 1;
                  firstError ??= error;
                  if (isKeyValueError(error)) {
                    answeredWithError += 1;
                    if (!timedOut) this.#parts?.answered();
                  }
                  done();
                },
              );
          }),
      )
      .catch(fallbackRest);
  }

  /** Counts, times and logs a store call whose keys the fail mode answers (all, or `part`). */
  #reportFailure(started: number, error: unknown, part?: { keys: number; of: number }): void {
    const kind = failureKind(error);
    this.#metrics.errors.inc({ kind });
    if (kind === 'circuit-open') return;
    // A key's own value (WRONGTYPE) is no outage: health() does not report it.
    if (!isKeyValueError(error)) this.#lastFailure = error;
    this.#observe(started, kind);
    this.#failureLog.log(this.#logger, 'warn', 'rate-limit store call failed; applying fail mode', {
      store: this.#store.kind,
      failMode: this.#failMode,
      kind,
      ...part,
      error: (error as Error)?.message,
    });
  }

  /**
   * Times a store call that was made (a call the open breaker skipped is not): answered
   * (`ok`), or failed by its deadline (`timeout`) or an error, when the fail mode answered.
   */
  #observe(started: number, result: 'ok' | 'timeout' | 'error'): void {
    if (result === 'ok') this.#lastFailure = undefined;
    this.#metrics.duration.observe(
      { store: this.#store.kind, result },
      (performance.now() - started) / 1_000,
    );
  }

  /**
   * Runs one adjustment (peek, refund, penalty, block) under the checks' deadline and breaker.
   * It rejects on failure rather than applying the fail mode: a refund or a block has no local
   * answer, and the caller decides whether to retry.
   */
  adjust<T>(call: (options: ConsumeOptions) => Promise<T>, operation: string): Promise<T> {
    // The store learns when the call stops mattering, so a late arrival is skipped, not applied.
    const options = { deadlineMs: this.#deadlineMs };
    return this.#breaker
      .execute(() => {
        const sent = withDeadline(
          call(options),
          this.#deadlineMs,
          `rate-limit ${operation} on ${this.#store.kind}`,
        ).catch(uncountedIfKeyValue);
        return this.#parts ? this.#parts.counted(sent) : sent;
      })
      .then(unlessPartFailure)
      .catch((error: unknown) => {
        const kind = failureKind(error);
        this.#metrics.errors.inc({ kind });
        this.#adjustFailureLog.log(this.#logger, 'warn', `rate-limit ${operation} failed`, {
          store: this.#store.kind,
          kind,
          error: (error as Error)?.message,
        });
        throw error;
      });
  }

  #fallback(storeKey: string, rule: CallRule, cost: number): ConsumeOutcome {
    if (this.#failMode === 'local')
      return this.#fallbackStore.consumeOne(storeKey, rule.fallbackLimits, cost, this.#block);
    const allowed = this.#failMode === 'open';
    return {
      blockedMs: 0,
      decisions: rule.limits.map((policy) => {
        const limit = capacityOf(policy);
        return {
          name: policy.name,
          windowMs: policy.windowMs,
          allowed,
          limit,
          remaining: allowed ? limit : 0,
          resetMs: 0,
          nextMs: 0,
          retryAfterMs: allowed ? 0 : closedRetryAfterMs,
          delayMs: 0,
        };
      }),
    };
  }
}

/**
 * How long after a check the points it counted stay where a refund takes points from: the
 * current window of a fixed or sliding window (a refund takes from the current count only, and
 * the next window's count is other requests'), the window of a sliding log (after it the entry
 * has slid out, and a refund would drop another request's). Buckets have no window: a refund
 * adds back what the check took, capped at the burst, at any time.
 */
function countingWindowMs(policy: LimitPolicy, decision: Decision): number {
  switch (policy.algorithm) {
    case 'fixed-window':
      // An admission with points leaves a count, so resetMs is the time to the window's end.
      return decision.resetMs;
    case 'sliding-window':
      // With a count in the current window, resetMs runs to the end of the window after it.
      return decision.resetMs - policy.windowMs;
    case 'sliding-log':
      return policy.windowMs;
    default:
      return Number.POSITIVE_INFINITY;
  }
}

/** The `kind` label of a failed store call: its deadline passed, the breaker was open, or else. */
function failureKind(error: unknown): 'timeout' | 'circuit-open' | 'error' {
  if (error instanceof TimeoutError) return 'timeout';
  return (error as { code?: string })?.code === 'NOA_CIRCUIT_OPEN' ? 'circuit-open' : 'error';
}
