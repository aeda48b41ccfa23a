import { TimeoutError } from '@noa/core';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { privateRedisConnections } from './redis-fixture.js';

const { redis, skip } = await startPrivateRedisOrSkip();

// limiter.reset() is called on a request's path (rate-limiter-flexible's login recipe deletes the
// failed-attempt counter on a successful login): like a check or an adjustment, it waits for Redis
// at most `deadlineMs`, and one that reaches Redis after its caller gave up changes nothing.
describe.skipIf(skip !== undefined)('limiter.reset() on a stalled Redis', () => {
  const { admin, client } = privateRedisConnections(redis);

  it('rejects with TimeoutError by its deadline while Redis is paused, and the late call deletes nothing', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'reset-deadline:' }),
      limits: [{ limit: 3, windowMs: 600_000 }],
      deadlineMs: 200,
    });
    expect((await limiter.check('user:1')).remaining).toBe(2);
    expect((await limiter.check('user:1')).remaining).toBe(1);
    // Well past the deadline: a reset that waited for Redis would still be waiting at the race's end.
    await redis!.pause(4_000);
    const stillWaiting = Symbol('still waiting');
    const settled = await Promise.race([
      limiter.reset('user:1').then(
        (existed) => existed,
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(resolve, 2_000, stillWaiting)),
    ]);
    expect(settled).toBeInstanceOf(TimeoutError);
    await admin.client('UNPAUSE');
    // The reset reached Redis after its caller was told it failed: it changed nothing.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await limiter.peek('user:1')).remaining).toBe(1);
    expect(await limiter.reset('user:1')).toBe(true);
    expect((await limiter.peek('user:1')).remaining).toBe(3);
    await limiter.close();
  });

  it('runs its script again as EVAL after a SCRIPT FLUSH (NOSCRIPT)', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'reset-flush:' }),
      limits: [{ algorithm: 'sliding-log', limit: 2, windowMs: 600_000 }],
      deadlineMs: 2_000,
    });
    await limiter.check('user:2');
    expect(await limiter.reset('user:2')).toBe(true);
    await limiter.check('user:2');
    await admin.script('FLUSH');
    expect(await limiter.reset('user:2')).toBe(true);
    expect(await limiter.reset('user:2')).toBe(false);
    expect((await limiter.peek('user:2')).remaining).toBe(2);
    await limiter.close();
  });
});
