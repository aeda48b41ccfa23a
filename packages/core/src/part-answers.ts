/**
 * A circuit breaker in front of a backend whose parts fail apart (a Redis Cluster's masters): a
 * call that failed while another part had answered within {@link partAnswerWindowMs} is that
 * part's failure, not the backend's, and must not be counted by the breaker. Each call there is
 * often one key, so with one master of three down a run of failed calls can all land on it (one
 * `getMany`'s keys on that master, or by chance at low traffic: (1/3)^10 per run of 10), and the
 * breaker would open for every key. Within a second the other parts answer many times over at any
 * traffic where such runs are likely; a backend that stopped answering as a whole is counted once
 * no part answered for that long. Used by the rate limiter's store caller and the cache's guard.
 */

/** How long (ms) another part's answer keeps a failure its own part's. */
export const partAnswerWindowMs = 1_000;

/** A failed call of one part while another part answered: the breaker does not count it. */
export class PartFailure {
  constructor(readonly error: unknown) {}
}

/** When a part of the backend last answered, and what that makes of a failure now. */
export class PartAnswers {
  #lastAnswerAt = Number.NEGATIVE_INFINITY;
  readonly #now: () => number;
  readonly #breakerClosed: () => boolean;

  /**
   * `now` is the caller's clock (ms); `breakerClosed` tells whether its breaker is closed: while
   * it is not, every failure counts (its trial must, and no call answered while it was open).
   */
  constructor(now: () => number, breakerClosed: () => boolean) {
    this.#now = now;
    this.#breakerClosed = breakerClosed;
  }

  /** A part answered now. */
  answered(): void {
    this.#lastAnswerAt = this.#now();
  }

  /** Whether a failure now is its part's: the breaker is closed and a part answered within the window. */
  otherPartAnswered(): boolean {
    return this.#breakerClosed() && this.#now() - this.#lastAnswerAt < partAnswerWindowMs;
  }

  /**
   * `call` as the breaker sees it: its answer marks a part as answering; its failure while
   * {@link otherPartAnswered} resolves as a {@link PartFailure} (not counted by the breaker, nor a
   * trial of it), which the caller handles as the failure it is (see {@link unlessPartFailure}).
   */
  counted<T>(call: Promise<T>): Promise<T | PartFailure> {
    return call.then(
      (value) => {
        this.answered();
        return value;
      },
      (error: unknown) => {
        if (this.otherPartAnswered()) return new PartFailure(error);
        throw error;
      },
    );
  }
}

/** `outcome`, or the error of a {@link PartFailure} thrown: what the caller of the breaker sees. */
export function unlessPartFailure<T>(outcome: T | PartFailure): T {
  if (outcome instanceof PartFailure) throw outcome.error;
  return outcome;
}
