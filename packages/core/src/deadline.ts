import { TimeoutError } from './errors.js';

/**
 * Resolves with `work`'s value, or rejects with a {@link TimeoutError} once `timeoutMs` has
 * passed, whichever comes first. The timer is cleared as soon as `work` settles, so nothing is
 * left behind; it is not unref'd: a caller awaiting the answer gets it (at the latest a
 * TimeoutError) rather than a process that exits under it with the await unsettled. `work` itself is not cancelled: pass `onTimeout` to abort it.
 */
export function withDeadline<T>(
  work: Promise<T>,
  timeoutMs: number,
  operation: string,
  onTimeout?: () => void,
): Promise<T> {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return work;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout?.();
      reject(new TimeoutError(operation, timeoutMs));
    }, timeoutMs);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
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
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
