import { TimeoutError } from '@noa/core';

/**
 * Calls `expired` once `timeoutMs` has passed and the replies that came by then have been read;
 * returns the function that cancels it. A process that was busy past the deadline (a long
 * synchronous task, a GC pause, a CPU shared with other processes) wakes with the timer due and
 * the store's reply already in its socket, and Node runs due timers before it reads sockets: a
 * timer alone would answer by the fail mode a check that Redis answered in time. So the timer
 * only schedules the verdict for the loop's check phase (`setImmediate`), which comes after the
 * poll phase has read every socket that was ready, and their replies' promise callbacks have run:
 * one more turn of the loop, which does not wait for I/O while an immediate is pending.
 * `timeoutMs` is at most core's `maxTimerMs` (every caller's deadline is validated so);
 * `unref`: the timer does not keep the process alive.
 */
export function startReplyDeadline(
  timeoutMs: number,
  expired: () => void,
  options: { unref?: boolean } = {},
): () => void {
  let immediate: NodeJS.Immediate | undefined;
  // The immediate stays referenced even when the timer is not: an unreferenced one does not keep
  // the poll phase from blocking, and would wait for the next I/O or timer, however late.
  const timer = setTimeout(() => {
    immediate = setImmediate(expired);
  }, timeoutMs);
  if (options.unref === true) timer.unref();
  return () => {
    clearTimeout(timer);
    if (immediate !== undefined) clearImmediate(immediate);
  };
}

/**
 * Core's `withDeadline` for a call whose result comes from I/O: `work`'s value, or a
 * `TimeoutError` once `timeoutMs` has passed without it having arrived (see
 * {@link startReplyDeadline}). A `timeoutMs` of 0, below 0 or not finite means no deadline.
 */
export function withReplyDeadline<T>(work: Promise<T>, timeoutMs: number, operation: string): Promise<T> {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return work;
  return new Promise<T>((resolve, reject) => {
    const cancel = startReplyDeadline(timeoutMs, () => reject(new TimeoutError(operation, timeoutMs)));
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
