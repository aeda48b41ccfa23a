/**
 * The Redis deadline of a test that is not about deadlines: a cache's `operationTimeoutMs`
 * (default 500 ms), a rate limiter's `deadlineMs` (default 25 ms). With test files overlapping
 * on a loaded 2-core machine, a test process or Redis can stall past the default, and the call
 * then reads as a miss, a lost write or a fail-mode decision in a test about something else
 * (decision 013). A test about deadlines, breakers or a slow or failing Redis keeps its own.
 */
export const generousDeadlineMs = 5_000;

/**
 * `work`, or an error naming `what` once `timeoutMs` passes without it. For a test's await that
 * has no deadline of its own (a close, a private server's start or stop, an add that waits for
 * its broker): a hang then fails with the step it hung in, not with the test's timeout, which
 * names none, and the test's `finally` still runs its own bounded cleanup. `work` goes on (it
 * cannot be taken back); a late outcome is dropped.
 */
export async function within<T>(what: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const startedAt = Date.now();
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not done after ${Date.now() - startedAt} ms (bound ${timeoutMs} ms)`)),
      timeoutMs,
    );
  });
  work.catch(() => {});
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** One step of {@link cleanUpWithin}: what it is (named in its failure), its bound, and the work. */
export type CleanupStep = readonly [what: string, timeoutMs: number, run: () => unknown];

/**
 * Runs a test's cleanup steps in order, each under its bound ({@link within}), every one even
 * when an earlier one failed or hung, then throws their failures together. Meant for vitest's
 * `onTestFinished`: an error there is reported beside the test's own, where a `finally` that
 * throws (or hangs) would hide it.
 */
export async function cleanUpWithin(steps: readonly CleanupStep[]): Promise<void> {
  const failures: string[] = [];
  for (const [what, timeoutMs, run] of steps) {
    try {
      await within(what, timeoutMs, Promise.resolve().then(run));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failures.push(message.startsWith(what) ? message : `${what}: ${message}`);
    }
  }
  if (failures.length > 0) throw new Error(`cleanup failed: ${failures.join('; ')}`);
}
