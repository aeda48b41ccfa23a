import { delay } from '@noa/core';

/**
 * A source that never answers unless its signal aborts: `load(signal)` then rejects with the
 * signal's reason, recorded in `reasons` (for the `ctx.signal` tests of `close()`).
 */
export function hungSource(): { load: (signal: AbortSignal) => Promise<never>; reasons: unknown[] } {
  const reasons: unknown[] = [];
  const load = (signal: AbortSignal) =>
    new Promise<never>((_, reject) => {
      signal.addEventListener(
        'abort',
        () => {
          reasons.push(signal.reason);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  return { load, reasons };
}

/** 'closed' if `closing` resolved within `boundMs`, 'late' otherwise (a generous bound, not a timing). */
export function settledWithin(closing: Promise<void>, boundMs: number): Promise<'closed' | 'late'> {
  return Promise.race([closing.then(() => 'closed' as const), delay(boundMs).then(() => 'late' as const)]);
}
