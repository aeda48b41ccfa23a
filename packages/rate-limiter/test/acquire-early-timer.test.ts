import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { createRateLimiter, MemoryStore } from '../src/index.js';
import { useAcquireFakeTimers } from './fake-timers.js';

const start = 1_700_000_000_000;

/**
 * A Node timer is due at libuv's loop time when it was armed plus its delay, and that loop time is
 * read once per loop turn: a timer armed late in a busy turn fires earlier than the limiter's
 * clock says it should, by as long as the turn had run (several ms on a loaded machine; CI saw the
 * Redis acquire test count 9 refusals where 8 was the bound). Here the limiter's clock runs `lagMs`
 * behind the (fake) timers once the key is refused, so each retry timer fires `lagMs` early by it.
 */
describe('limiter.acquire when its retry timer fires before the refusal ends by the clock', () => {
  useAcquireFakeTimers(start);

  it('waits out the rest instead of checking again (no extra refusal counted), then is admitted', async () => {
    const lagMs = 30;
    let lag = 0;
    const clock = { now: () => Date.now() - lag };
    const registry = new Registry();
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 1_000 }],
      store: new MemoryStore({ clock }),
      clock,
      registry,
    });
    await limiter.acquire('k');
    await vi.advanceTimersByTimeAsync(100);
    let admittedAt = 0;
    const second = limiter.acquire('k', { timeoutMs: 5_000 }).then((result) => {
      admittedAt = clock.now();
      return result;
    });
    // Refused (900 ms to go) and its retry timer armed; from now on the clock lags the timers.
    await vi.advanceTimersByTimeAsync(0);
    expect(limiter.waitingKeys).toBe(1);
    lag = lagMs;
    await vi.advanceTimersByTimeAsync(2_000);
    expect((await second).allowed).toBe(true);
    // Admitted when the window ended by the limiter's clock, not a turn later.
    expect(admittedAt - start).toBe(1_000);
    const data = await registry.getSingleMetric('noa_rate_limiter_checks_total')!.get();
    const limited = data.values
      .filter((value) => value.labels.result === 'limited')
      .reduce((sum, value) => sum + value.value, 0);
    // One refusal, the one that made the waiter wait; not a second one at the early wake-up.
    expect(limited).toBe(1);
    await limiter.close();
  });
});
