import { once } from 'node:events';
import { defaultConsecutiveFailures, delay } from '@noa/core';
import { type PrivateRedis, recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type DecisionSource } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { commandCalls, scriptCalls } from './redis-stats.js';

// Issue 9: with the default breaker, a Redis that stalled after healthy traffic was noticed only
// once the failure ratio over 5 s turned (seconds of checks each waiting the deadline), and every
// half-open probe was a batch of user checks waiting the deadline again.
const { redis, skip }: { redis?: PrivateRedis; skip?: string } = await startPrivateRedisOrSkip();
const clients: Redis[] = [];

function connect(): Redis {
  const client = new Redis(redis!.url, { ...recommendedRedisOptions });
  client.on('error', () => {});
  clients.push(client);
  return client;
}

/** One sample of the registry (exact name with labels), 0 when absent. */
async function sample(registry: Registry, name: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

const timedOut =
  'noa_rate_limiter_check_duration_seconds_count{limiter="limiter",store="redis",result="timeout"}';

describe.skipIf(skip !== undefined)('a Redis that stalls after healthy traffic (default breaker)', () => {
  let admin: Redis;
  beforeAll(async () => {
    admin = connect();
    await once(admin, 'ready');
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it('opens after a run of timed-out checks, probes by PING, and closes on its own', async () => {
    const registry = new Registry();
    const logger = recordingLogger();
    const client = connect();
    await once(client, 'ready');
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'probe:' }),
      limits: [{ limit: 1_000_000, windowMs: 60_000 }],
      deadlineMs: 25,
      failMode: 'local',
      breaker: { halfOpenAfterMs: 200 },
      registry,
      logger,
    });
    const states: string[] = [];
    // Healthy traffic fills the ratio's window with successes (what hid the stall).
    for (let index = 0; index < 300; index += 1) await limiter.check(`user-${index % 20}`);
    expect(limiter.health().details?.breaker).toBe('closed');
    const timedOutBefore = await sample(registry, timedOut);
    await admin.config('RESETSTAT');

    await redis!.pause(3_000);
    const sources: Record<string, number> = {};
    // Checks one after another, each its own store call, for several probe periods.
    for (let index = 0; index < 400; index += 1) {
      const { source } = await limiter.check(`user-${index % 20}`);
      sources[source] = (sources[source] ?? 0) + 1;
      states.push(String(limiter.health().details?.breaker));
      await delay(2);
    }
    const timedOutDuring = (await sample(registry, timedOut)) - timedOutBefore;
    // The run opened it: the checks the stalled store kept until their deadline are that run.
    expect(timedOutDuring).toBeGreaterThan(0);
    expect(timedOutDuring).toBeLessThanOrEqual(defaultConsecutiveFailures);
    expect(sources).toEqual({ fallback: 400 } satisfies Partial<Record<DecisionSource, number>>);
    expect(states).toContain('half-open');

    // The paused commands run once the pause ends: no check was sent after the breaker opened,
    // only the timed-out run; the probes were PINGs (at least two failed while it was paused).
    await admin.ping();
    const stalled = await commandCalls(admin);
    expect(await scriptCalls(admin)).toBe(timedOutDuring);
    expect(stalled.ping ?? 0).toBeGreaterThanOrEqual(2);

    // Recovery: the next probe succeeds and closes it; checks go to the store again.
    let recovered: DecisionSource | undefined;
    for (let attempt = 0; attempt < 200 && recovered !== 'store'; attempt += 1) {
      recovered = (await limiter.check('after')).source;
      if (recovered !== 'store') await delay(20);
    }
    expect(recovered).toBe('store');
    expect(limiter.health().details?.breaker).toBe('closed');
    expect(await sample(registry, 'noa_rate_limiter_fallback_active{limiter="limiter"}')).toBe(0);
    expect(logger.messages('warn')).toContain('rate-limit store breaker open: fail mode applies');
    expect(logger.messages('info')).toContain('rate-limit store breaker closed: store back in use');
    // Still only the run's timeouts: the probes that failed were not checks.
    expect((await sample(registry, timedOut)) - timedOutBefore).toBe(timedOutDuring);
    await limiter.close();
  });
});
