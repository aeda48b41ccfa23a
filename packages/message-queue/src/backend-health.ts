/** A backend call in flight, as {@link BackendHealth.begin} returns it. */
export interface BackendCall {
  readonly operation: string;
  readonly startedAt: number;
}

/** What {@link BackendHealth} reports when the backend is found down. */
export interface BackendDown {
  /** The operation that failed or did not answer. */
  operation: string;
  /** The call's error; undefined when it did not answer within the bound. */
  error?: unknown;
  timeoutMs: number;
}

/** What {@link BackendHealth} reports when the backend answers again. */
export interface BackendUp {
  /** How long it was down (ms), from the first failed or late call's start. */
  downMs: number;
  /** Calls that failed while it was down. */
  failedCalls: number;
}

/**
 * What a worker knows of its backend: `unknown` until its first call is answered or found failed
 * (a worker that never reached its backend is not proven up), `up` while calls are answered,
 * `down` from a failed or unanswered call until the next answered one.
 */
export type BackendState = 'unknown' | 'up' | 'down';

/**
 * Whether a worker's backend answers, from its own calls: `unknown` until the first call is
 * answered (`up`) or fails (`down`); down at the first call that fails, or
 * that has gone unanswered for `timeoutMs` while no call was answered for as long; up again at
 * the next answered call. Each change is reported once, so an outage is one `down` and one `up`
 * however many calls fail meanwhile. Plain values in (`now` from the caller), no timers.
 */
export class BackendHealth {
  readonly #timeoutMs: number;
  readonly #pending = new Set<BackendCall>();
  readonly #onDown: (down: BackendDown) => void;
  readonly #onUp: (up: BackendUp) => void;
  #state: BackendState = 'unknown';
  #downSince = 0;
  #failedCalls = 0;
  #lastAnsweredAt = Number.NEGATIVE_INFINITY;

  constructor(timeoutMs: number, onDown: (down: BackendDown) => void, onUp: (up: BackendUp) => void) {
    this.#timeoutMs = timeoutMs;
    this.#onDown = onDown;
    this.#onUp = onUp;
  }

  /** `unknown` until the first call is answered or found failed; then `up` or `down`. */
  get state(): BackendState {
    return this.#state;
  }

  /** Up: a call was answered since the last failure (false while `unknown`). */
  get up(): boolean {
    return this.#state === 'up';
  }

  /** Down: a call failed or went unanswered past the bound, none answered since. */
  get down(): boolean {
    return this.#state === 'down';
  }

  begin(operation: string, now: number): BackendCall {
    const call = { operation, startedAt: now };
    this.#pending.add(call);
    return call;
  }

  /**
   * The call was answered. With `provesUp` false (answered without the backend: a RabbitMQ lease
   * renewal from the state store while the broker is unreachable) it is only no longer pending:
   * it neither ends an outage nor counts as an answer that keeps a slow call from being one.
   */
  answered(call: BackendCall, now: number, provesUp = true): void {
    this.#pending.delete(call);
    if (!provesUp) return;
    this.#lastAnsweredAt = now;
    const was = this.#state;
    if (was === 'up') return;
    this.#state = 'up';
    // From `unknown` there was no outage to report the end of.
    if (was === 'unknown') return;
    this.#onUp({ downMs: Math.max(0, now - this.#downSince), failedCalls: this.#failedCalls });
  }

  failed(call: BackendCall, error: unknown): void {
    this.#pending.delete(call);
    if (this.#state !== 'down') this.#down(call, error);
    else this.#failedCalls += 1;
  }

  /** Finds the backend down if a call has waited past the bound with nothing answered meanwhile. */
  check(now: number): void {
    if (this.#state === 'down' || now - this.#lastAnsweredAt < this.#timeoutMs) return;
    for (const call of this.#pending) {
      if (now - call.startedAt >= this.#timeoutMs) {
        this.#down(call, undefined);
        return;
      }
    }
  }

  #down(call: BackendCall, error: unknown): void {
    if (this.#state === 'down') return;
    this.#state = 'down';
    this.#downSince = call.startedAt;
    this.#failedCalls = error === undefined ? 0 : 1;
    this.#onDown({ operation: call.operation, error, timeoutMs: this.#timeoutMs });
  }
}
