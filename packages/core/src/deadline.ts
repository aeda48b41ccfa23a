import { TimeoutError } from './errors.js';

/**
 * The longest delay `setTimeout` honours (about 24.8 days); Node runs a longer one after 1 ms.
 * The bound of every option that becomes a timer.
 */
export const maxTimerMs = 2 ** 31 - 1;

/**
 * `setTimeout` for any delay: one longer than {@link maxTimerMs} is run as a chain of timers, so
 * it fires late rather than at once. Returns the function that cancels it.
 */
function startTimer(callback: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const arm = (leftMs: number): void => {
    timer = setTimeout(
      leftMs > maxTimerMs ? () => arm(leftMs - maxTimerMs) : callback,
      Math.min(leftMs, maxTimerMs),
    );
  };
  arm(ms);
  return () => clearTimeout(timer);
}

/**
 * Resolves with `work`'s value, or rejects with a {@link TimeoutError} once `timeoutMs` has
 * passed, whichever comes first. The timer is cleared as soon as `work` settles, so nothing is
 * left behind; it is not unref'd: a caller awaiting the answer gets it (at the latest a
 * TimeoutError) rather than a process that exits under it with the await unsettled. `work` itself is not cancelled: pass `onTimeout` to abort it (if it throws, the
 * TimeoutError carries that error as `cause`). A `timeoutMs` of 0, below 0 or not finite means no
 * deadline: `work` is returned as is.
 */
export function withDeadline<T>(
  work: Promise<T>,
  timeoutMs: number,
  operation: string,
  onTimeout?: () => void,
): Promise<T> {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return work;
  return new Promise<T>((resolve, reject) => {
    const cancel = startTimer(() => {
      // A throwing onTimeout must not leave the caller awaiting forever (nor crash the process).
      let abortError: unknown;
      try {
        onTimeout?.();
      } catch (error) {
        abortError = error;
      }
      reject(new TimeoutError(operation, timeoutMs, { cause: abortError }));
    }, timeoutMs);
    work.then(
      (value) => {
        cancel();
        resolve(value);
      },
      (error: unknown) => {
        cancel();
        reject(error);
      },
    );
  });
}

/** Resolves after `ms`, or rejects with the signal's reason when `signal` aborts first. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const cancel = startTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      cancel();
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
