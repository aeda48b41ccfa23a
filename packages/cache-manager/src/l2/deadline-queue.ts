import { TimeoutError } from '@noa/core';

interface Pending {
  deadline: number;
  operation: string;
  reject: (error: unknown) => void;
}

/**
 * Deadlines for many concurrent operations that all share one timeout. Because every
 * deadline is "now + the same timeout", insertion order is deadline order: one unref'd timer
 * for the oldest pending operation replaces a setTimeout/clearTimeout pair per Redis call
 * (about 1 µs each, a sizeable share of an L2 hit). Behaves like core's `withDeadline`, a reply
 * that came in by the deadline included.
 */
export class DeadlineQueue {
  readonly #timeoutMs: number;
  readonly #pending = new Set<Pending>();
  #timer: NodeJS.Timeout | undefined;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** Resolves with `work`'s value or rejects with `TimeoutError` once the timeout passed. */
  run<T>(work: Promise<T>, operation: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { deadline: performance.now() + this.#timeoutMs, operation, reject };
      this.#pending.add(pending);
      if (this.#timer === undefined) this.#arm(this.#timeoutMs);
      work.then(
        (value) => {
          this.#pending.delete(pending);
          resolve(value);
        },
        (error: unknown) => {
          this.#pending.delete(pending);
          reject(error);
        },
      );
    });
  }

  #arm(ms: number): void {
    // The verdict waits for the loop's check phase, after the poll phase has read the replies
    // already in (core's `startDeadline` explains why): a process busy past a deadline must not
    // time out a call that Redis answered in time.
    this.#timer = setTimeout(() => setImmediate(() => this.#expire()), Math.max(1, Math.ceil(ms)));
    this.#timer.unref();
  }

  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    for (const pending of this.#pending) {
      if (pending.deadline > now) {
        this.#arm(pending.deadline - now);
        return;
      }
      this.#pending.delete(pending);
      pending.reject(new TimeoutError(pending.operation, this.#timeoutMs));
    }
  }
}
