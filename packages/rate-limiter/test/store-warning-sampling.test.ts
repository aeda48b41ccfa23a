import { ManualClock } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { ConfigError, type ConsumeOutcome, createRateLimiter, type RateLimitStore } from '../src/index.js';

/** A remote store whose every call fails (a Redis that is down). */
class FailingStore implements RateLimitStore {
  readonly kind = 'failing';
  readonly remote = true;
  consume(): Promise<ConsumeOutcome[]> {
    return Promise.reject(new Error('connection refused'));
  }
  async reset(): Promise<void> {}
  async close(): Promise<void> {}
}

const failed = 'rate-limit store call failed; applying fail mode';

describe('warnings of a failing store are sampled', () => {
  it('one failed-call warning per 10 s, not one per call; the next carries the count held back', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const logger = recordingLogger();
    const limiter = createRateLimiter({
      store: new FailingStore(),
      limits: [{ limit: 100, windowMs: 60_000 }],
      failMode: 'open',
      logger,
      clock,
      // The breaker stays closed: every check is a failed call, as before a breaker opens.
      breaker: { consecutiveFailures: 1_000_000 },
    });
    for (let index = 0; index < 1_000; index += 1) {
      expect((await limiter.check(`k:${index}`)).source).toBe('fail-mode');
      clock.advance(5);
    }
    // 5 s of failures: one line.
    expect(logger.entriesAt('warn').filter((line) => line.message === failed)).toHaveLength(1);
    clock.advance(5_000);
    await limiter.check('later');
    const lines = logger.entriesAt('warn').filter((line) => line.message === failed);
    expect(lines).toHaveLength(2);
    expect(lines[1]!.fields).toMatchObject({ store: 'failing', suppressed: 999 });
    await limiter.close();
  });

  it("the breaker's probes during an outage are sampled too; its opening is always logged", async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const logger = recordingLogger();
    const limiter = createRateLimiter({
      store: new FailingStore(),
      limits: [{ limit: 100, windowMs: 60_000 }],
      failMode: 'open',
      logger,
      clock,
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 20 },
    });
    // About 25 probe cycles (half-open, a failed probe, open again) in real time.
    const until = performance.now() + 600;
    while (performance.now() < until) {
      await limiter.check('k');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const breakerLines = logger
      .entriesAt('warn')
      .filter((line) => line.message.startsWith('rate-limit store breaker'));
    expect(breakerLines[0]!.message).toBe('rate-limit store breaker open: fail mode applies');
    // The opening, and one probe line of the sampled ones (the limiter's clock stood still).
    expect(breakerLines.length).toBeLessThanOrEqual(2);
    expect(logger.entriesAt('warn').filter((line) => line.message === failed)).toHaveLength(1);
    await limiter.close();
  });

  it('logIntervalMs sets the sampling interval: one line per second with 1_000', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const logger = recordingLogger();
    const limiter = createRateLimiter({
      store: new FailingStore(),
      limits: [{ limit: 100, windowMs: 60_000 }],
      failMode: 'open',
      logger,
      clock,
      logIntervalMs: 1_000,
      breaker: { consecutiveFailures: 1_000_000 },
    });
    // 5 s of failures, one check every 5 ms: a line at 0, 1, 2, 3 and 4 s.
    for (let index = 0; index < 1_000; index += 1) {
      await limiter.check(`k:${index}`);
      clock.advance(5);
    }
    const lines = logger.entriesAt('warn').filter((line) => line.message === failed);
    expect(lines).toHaveLength(5);
    expect(lines[1]!.fields).toMatchObject({ suppressed: 199 });
    await limiter.close();
  });

  it.each([0, -1, 1.5, Number.POSITIVE_INFINITY, '10s'])(
    'refuses logIntervalMs %s, naming the field',
    (value) => {
      const create = () =>
        createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], logIntervalMs: value as number });
      expect(create).toThrow(ConfigError);
      expect(create).toThrow(/logIntervalMs/);
    },
  );
});
