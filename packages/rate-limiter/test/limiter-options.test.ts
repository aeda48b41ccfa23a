import { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import winston from 'winston';
import { createRateLimiter, type RateLimiterOptions } from '../src/index.js';
import { redisStoreOptionsSchema } from '../src/stores/redis-store.js';

/** The fields a ConfigError names for `options`, or undefined when they are accepted. */
async function rejectedFields(options: Partial<RateLimiterOptions>): Promise<string[] | undefined> {
  try {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], ...options });
    await limiter.close();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).fields;
  }
}

describe('rate limiter options', () => {
  it('says what a registry must be (it said "Invalid input")', () => {
    expect(() =>
      createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], registry: 5 as never }),
    ).toThrow(/registry: expected a prom-client Registry/);
  });

  it('rejects a deadlineMs longer than a timer can wait (Node fires it after 1 ms: every check would time out)', async () => {
    expect(await rejectedFields({ deadlineMs: 2 ** 31 })).toEqual(['deadlineMs']);
    expect(await rejectedFields({ deadlineMs: 2 ** 31 - 1 })).toBeUndefined();
  });

  it('rejects an auto-block whose first block is longer than maxBlockMs (it was cut to maxBlockMs silently)', async () => {
    const autoBlock = { violations: 3, withinMs: 60_000 };
    // Two days against the default maxBlockMs of one.
    expect(await rejectedFields({ autoBlock: { ...autoBlock, blockMs: 172_800_000 } })).toEqual([
      'autoBlock.blockMs',
    ]);
    expect(
      await rejectedFields({ autoBlock: { ...autoBlock, blockMs: 60_000, maxBlockMs: 30_000 } }),
    ).toEqual(['autoBlock.blockMs']);
    expect(
      await rejectedFields({ autoBlock: { ...autoBlock, blockMs: 172_800_000, maxBlockMs: 172_800_000 } }),
    ).toBeUndefined();
  });

  it('refuses a logger without debug, info, warn and error (one with only warn was accepted, and lost the lines of the others)', async () => {
    const partial = { warn: () => {}, error: () => {} } as never;
    expect(await rejectedFields({ logger: partial })).toEqual(['logger']);
    expect(() => createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], logger: partial })).toThrow(
      /logger: expected a Logger \(debug, info, warn, error\)/,
    );
    expect(await rejectedFields({ logger: winston.createLogger({ silent: true }) })).toBeUndefined();
    expect(await rejectedFields({ logger: console })).toBeUndefined();
  });

  it("RedisStore's logger option asks the same", () => {
    const result = redisStoreOptionsSchema.safeParse({ client: {}, logger: { warn: () => {} } });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.path.join('.'))).toContain('logger');
    const winstonLogger = redisStoreOptionsSchema.safeParse({
      client: {},
      logger: winston.createLogger({ silent: true }),
    });
    expect(winstonLogger.error?.issues.map((issue) => issue.path.join('.')) ?? []).not.toContain('logger');
  });
});
