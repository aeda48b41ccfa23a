import { smoke } from '@noa/testkit/bench';

/** Default time budget of one sample, in ms. */
export const sampleMs = smoke ? 20 : 400;

/**
 * Runs `fn` repeatedly for about `budgetMs` with `inFlight` calls outstanding and returns
 * ops/s. Time-boxed rather than count-boxed, so a 100× slower contender costs no more wall
 * time than a fast one.
 */
export async function opsWithin(
  fn: (index: number) => unknown,
  inFlight = 1,
  budgetMs = sampleMs,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  const end = started + budgetMs;
  const lane = async () => {
    while (true) {
      // Check the clock every 64 calls: performance.now() is not free at millions of ops/s.
      if ((next & 63) === 0 && performance.now() >= end) return;
      const index = next;
      next += 1;
      const result = fn(index);
      if (result instanceof Promise) await result;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return next / ((performance.now() - started) / 1_000);
}
