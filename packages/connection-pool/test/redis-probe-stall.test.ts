import { describe, expect, it } from 'vitest';
import { createRedisPool } from '../src/redis.js';

/** Blocks the event loop for `ms`, as a GC pause, a long synchronous task or a starved CPU does. */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // Busy: no timer, no socket read.
  }
}

// Nothing listens on port 1. A process stalled past the probe's deadline wakes with the
// deadline's timer due and the refusal unread: Node runs timers before it reads sockets, so the
// probe's wait for a connection ends first, with nothing learnt about the server.
describe('RedisPool#checkHealth() when its probe gets no connection within its deadline', () => {
  it('is not healthy: a probe that reached nothing is no proof the server answers', async () => {
    const pool = createRedisPool({ redis: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
    try {
      const checked = pool.checkHealth({ timeoutMs: 5_000 });
      stall(400);
      const health = await checked;
      expect(health).toMatchObject({ healthy: false, reason: 'unresponsive' });
      expect(pool.health().healthy).toBe(false);
    } finally {
      await pool.close();
    }
  });
});
