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
 * Calls `expired` once `timeoutMs` has passed and the I/O that came in by then has been read;
 * returns the function that cancels it. A process that was busy past a deadline (a long
 * synchronous task, a GC pause, a CPU shared with other processes) wakes with the timer due and
 * the reply already in its socket, and Node runs due timers before it reads sockets: a timer
 * alone would give a `TimeoutError` to a call its server answered in time. So the timer only
 * schedules the verdict for the loop's check phase (`setImmediate`), which comes after the poll
 * phase has read every socket that was ready and their promise callbacks have run: one more turn
 * of the loop, which does not wait for I/O while an immediate is pending. A delay longer than
 * {@link maxTimerMs} is run as a chain of timers. `unref`: the timer does not keep the process
 * alive (the immediate, once scheduled, does: an unreferenced one would not stop the poll phase
 * from blocking, and could wait for the next I/O or timer, however late).
 */
export function startDeadline(
  timeoutMs: number,
  expired: () => void,
  options: { unref?: boolean } = {},
): () => void {
  let immediate: ReturnType<typeof setImmediate> | undefined;
  let timer: ReturnType<typeof setTimeout>;
  const arm = (leftMs: number): void => {
    timer = setTimeout(
      leftMs > maxTimerMs
        ? () => arm(leftMs - maxTimerMs)
        : () => {
            immediate = setImmediate(expired);
          },
      Math.min(leftMs, maxTimerMs),
    );
    if (options.unref === true) timer.unref();
  };
  arm(timeoutMs);
  return () => {
    clearTimeout(timer);
    if (immediate !== undefined) clearImmediate(immediate);
  };
}

/**
 * Resolves with `work`'s value, or rejects with a {@link TimeoutError} once `timeoutMs` has
 * passed without it, whichever comes first; a `work` whose reply had come in by the deadline (a
 * process busy past it) still resolves (see {@link startDeadline}). The timer is cleared as soon
 * as `work` settles, so nothing is left behind; it is not unref'd: a caller awaiting the answer
 * gets it (at the latest a TimeoutError) rather than a process that exits under it with the await
 * unsettled. `work` itself is not cancelled: pass `onTimeout` to abort it (if it throws, the
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
    const cancel = startDeadline(timeoutMs, () => {
      // A throwing onTimeout must not leave the caller awaiting forever (nor crash the process).
      let abortError: unknown;
      try {
        onTimeout?.();
      } catch (error) {
        abortError = error;
      }
      reject(new TimeoutError(operation, timeoutMs, { cause: abortError }));
    });
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
