import { once } from 'node:events';
import { recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimitResult } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const { redis, skip } = await startPrivateRedisOrSkip();

/** Every line the limiter logged. */
const logger = recordingLogger();

describe.skipIf(skip !== undefined)(
  'a Redis killed under load: the outage is logged, not each failed call',
  () => {
    const client = new Redis(redis!.url, { ...recommendedRedisOptions, retryStrategy: () => 100 });
    client.on('error', () => {});
    afterAll(async () => {
      client.disconnect();
      await redis?.stop();
    });

    it('about 700 checks a second for 3 s after the kill: a handful of warnings, then one closing line with the count held back', async () => {
      // The operator's setup: default breaker (half of the calls failing within 5 s opens it,
      // probes every second), failMode 'local'.
      const limiter = createRateLimiter({
        store: new RedisStore({ client }),
        limits: [{ limit: 1_000, windowMs: 60_000 }],
        failMode: 'local',
        logger,
      });
      if (client.status !== 'ready') await once(client, 'ready');
      expect((await limiter.check('healthy')).source).toBe('store');

      await redis!.kill();
      const results: Promise<RateLimitResult>[] = [];
      const until = performance.now() + 3_000;
      let index = 0;
      while (performance.now() < until) {
        // 7 checks every 10 ms.
        for (let burst = 0; burst < 7; burst += 1) results.push(limiter.check(`user-${index++ % 500}`));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const answered = await Promise.all(results);
      expect(answered.length).toBeGreaterThan(700);
      expect(answered.every((result) => result.source === 'fallback')).toBe(true);

      const warnings = logger.messages('warn');
      const failedCalls = warnings.filter(
        (message) => message === 'rate-limit store call failed; applying fail mode',
      );
      console.log(
        `${answered.length} checks in 3 s after the kill: ${warnings.length} warnings (${failedCalls.length} failed-call lines)`,
      );
      // One failed-call line per 10 s (the first), the breaker's opening, and at most one probe line
      // (half-open, open again: sampled the same way); each was a line per failed call, 2,000+ here.
      expect(failedCalls).toHaveLength(1);
      expect(
        warnings.filter((message) => message === 'rate-limit store breaker open: fail mode applies').length,
      ).toBeGreaterThanOrEqual(1);
      expect(warnings.length).toBeLessThanOrEqual(3);

      await redis!.restart();
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && (await limiter.check(`after-${Date.now()}`)).source !== 'store')
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(limiter.fallbackActive).toBe(false);
      const closing = logger
        .entriesAt('info')
        .find(({ message }) => message === 'rate-limit store breaker closed: store back in use');
      // The failed calls and probes held back during the outage are counted in the closing line.
      expect(closing?.fields.suppressed).toBeGreaterThan(0);
      await limiter.close();
    }, 60_000);
  },
);
