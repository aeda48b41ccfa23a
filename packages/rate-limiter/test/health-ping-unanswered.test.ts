import { ManualClock } from '@noa/core';
import { describe, expect, it, vi } from 'vitest';
import { createRateLimiter } from '../src/index.js';
import { useAcquireFakeTimers } from './fake-timers.js';
import { RemoteMemoryStore } from './remote-memory-store.js';

/**
 * A store whose server keeps the connection but never answers (a hung or SIGSTOPped Redis, a
 * paused VM): ioredis keeps each command sent there until the connection ends. A readiness probe
 * calling `checkHealth()` every few seconds sent a new PING each time the last one's deadline
 * (5 s) had passed: one more kept for every probe, for as long as the server stayed so.
 */
class UnansweringStore extends RemoteMemoryStore {
  pings = 0;
  ping(): Promise<void> {
    this.pings += 1;
    return new Promise<void>(() => {});
  }
}

describe('checkHealth() on a store whose PING never comes back', () => {
  useAcquireFakeTimers(Date.UTC(2026, 0, 1));

  it('reports the timeout at every call, with one PING sent in all', async () => {
    const store = new UnansweringStore(new ManualClock());
    const limiter = createRateLimiter({ store, limits: [{ limit: 10, windowMs: 1_000 }] });
    for (let call = 0; call < 5; call += 1) {
      const report = limiter.checkHealth({ timeoutMs: 10_000, maxAgeMs: 0 });
      // Past the probe's own deadline (5 s): the next call does not join this PING.
      await vi.advanceTimersByTimeAsync(6_000);
      expect(await report).toMatchObject({ details: { probe: 'timeout' } });
    }
    expect(store.pings).toBe(1);
    await limiter.close();
  });
});
