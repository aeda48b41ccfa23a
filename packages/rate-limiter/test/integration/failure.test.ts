import { once } from 'node:events';
import { type PrivateRedis, recordingLogger, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type FailMode,
  type RateLimiter,
  type RateLimiterOptions,
  type RateLimitResult,
} from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const deadlineMs = 25;
// Generous bound (2 noisy cores, other suites running): what matters is that no check waits on
// Redis itself (a reconnect or a pause lasts seconds).
// The pause below lasts 2.5 s, so a check that waited for Redis would exceed the bound.
const bound = deadlineMs + 1_000;

let redis: PrivateRedis;
const clients: Redis[] = [];
let skip: string | undefined;
try {
  redis = await startPrivateRedis();
} catch (error) {
  skip = `skipped: no redis-server binary to start a private Redis (${(error as Error).message})`;
  console.log(skip);
}

/** What the limiter logged. */
const captureLogger = recordingLogger();

function limiterOn(
  failMode: FailMode,
  observe: Pick<RateLimiterOptions, 'registry' | 'logger'> = {},
): RateLimiter {
  const client = new Redis(redis.url, { ...recommendedRedisOptions, retryStrategy: () => 100 });
  client.on('error', () => {});
  clients.push(client);
  return createRateLimiter({
    store: new RedisStore({ client }),
    limits: [{ limit: 8, windowMs: 60_000 }],
    failMode,
    expectedInstances: 4,
    deadlineMs,
    breaker: { halfOpenAfterMs: 300, consecutiveFailures: 3 },
    ...observe,
  });
}

/** The value of one sample of `name` (with exactly these labels) in the registry's text output. */
async function sample(registry: Registry, name: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

async function timed(limiter: RateLimiter, key: string): Promise<RateLimitResult & { ms: number }> {
  const started = performance.now();
  const result = await limiter.check(key);
  return { ...result, ms: performance.now() - started };
}

describe.skipIf(skip !== undefined)('Redis paused, then killed: checks stay within the deadline', () => {
  beforeAll(async () => {
    // Prime: first connection and script load.
    for (const mode of ['local', 'open', 'closed'] as const) await limiterOn(mode).check('warm');
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it('honours every fail mode while Redis is paused, and recovers automatically after a kill', async () => {
    const registry = new Registry();
    const local = limiterOn('local', { registry, logger: captureLogger });
    const open = limiterOn('open');
    const closed = limiterOn('closed');
    // Each limiter has a new connection: its first check would also wait for the connect and
    // ready check, which on a loaded machine (load 10-15 on 2 cores) outlived the 25 ms deadline
    // and sent it to the fallback. The healthy checks must find connected clients.
    await Promise.all(
      clients.filter((client) => client.status !== 'ready').map((client) => once(client, 'ready')),
    );
    for (const limiter of [local, open, closed])
      expect((await limiter.check('healthy')).source).toBe('store');

    // The fallback counts in 60 s fixed windows aligned to the clock: start the paused phase
    // (well under 5 s) early in a window, so that its counts cannot straddle two windows.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 52_000) await new Promise((resolve) => setTimeout(resolve, 60_100 - intoWindow));
    await redis.pause(2_500);
    const during: Record<string, (RateLimitResult & { ms: number })[]> = { local: [], open: [], closed: [] };
    for (let index = 0; index < 5; index += 1) {
      during.local!.push(await timed(local, 'paused'));
      during.open!.push(await timed(open, 'paused'));
      during.closed!.push(await timed(closed, 'paused'));
    }
    // A burst of concurrent checks is bounded too.
    const burst = await Promise.all(
      Array.from({ length: 50 }, (_, index) => timed(local, `burst-${index % 5}`)),
    );
    // 'local' answers from its local limiter; 'open' and 'closed' know nothing of the quota.
    for (const [mode, results] of Object.entries({ ...during, burst }))
      for (const result of results) {
        expect(result.ms).toBeLessThan(bound);
        expect(result.source, mode).toBe(mode === 'open' || mode === 'closed' ? 'fail-mode' : 'fallback');
      }
    // local: 8 ÷ 4 instances = 2 per key; open admits all; closed refuses all.
    expect(during.local!.map((result) => result.allowed)).toEqual([true, true, false, false, false]);
    expect(during.open!.every((result) => result.allowed)).toBe(true);
    expect(during.closed!.every((result) => !result.allowed)).toBe(true);
    expect(local.fallbackActive).toBe(true);
    // Metrics and logs say what happened: calls cut by the deadline, the breaker open.
    expect(
      await sample(registry, 'noa_rate_limiter_store_errors_total{limiter="limiter",kind="timeout"}'),
    ).toBeGreaterThanOrEqual(3);
    expect(
      await sample(registry, 'noa_rate_limiter_store_errors_total{limiter="limiter",kind="circuit_open"}'),
    ).toBeGreaterThan(0);
    expect(await sample(registry, 'noa_rate_limiter_fallback_active{limiter="limiter"}')).toBe(1);
    const refusedLocally = [...during.local!, ...burst].filter((result) => !result.allowed).length;
    expect(
      await sample(
        registry,
        'noa_rate_limiter_checks_total{limiter="limiter",result="limited",source="fallback"}',
      ),
    ).toBe(refusedLocally);
    expect(captureLogger.messages('warn')).toContain('rate-limit store breaker open: fail mode applies');
    expect(captureLogger.messages('warn')).toContain('rate-limit store call failed; applying fail mode');

    await redis.kill();
    const killed: (RateLimitResult & { ms: number })[] = [];
    const until = Date.now() + 1_000;
    while (Date.now() < until) killed.push(await timed(local, 'killed'));
    console.log(
      `killed phase: ${killed.length} checks, max ${Math.max(...killed.map((result) => result.ms)).toFixed(1)} ms; ` +
        `paused phase max ${Math.max(...burst.map((result) => result.ms)).toFixed(1)} ms`,
    );
    for (const result of killed) {
      expect(result.ms).toBeLessThan(bound);
      expect(result.source).toBe('fallback');
    }

    await redis.restart();
    let recovered: RateLimitResult | undefined;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const result = await timed(local, `after-${Date.now()}`);
      expect(result.ms).toBeLessThan(bound);
      if (result.source === 'store') {
        recovered = result;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(recovered?.allowed).toBe(true);
    expect(local.fallbackActive).toBe(false);
    expect(await sample(registry, 'noa_rate_limiter_fallback_active{limiter="limiter"}')).toBe(0);
    expect(captureLogger.messages('info')).toContain('rate-limit store breaker closed: store back in use');
    // Store calls that answered were timed (the healthy check, then the recovered one at least),
    // and so were the calls that hit the deadline while Redis was paused.
    expect(
      await sample(
        registry,
        'noa_rate_limiter_check_duration_seconds_count{limiter="limiter",store="redis",result="ok"}',
      ),
    ).toBeGreaterThanOrEqual(2);
    expect(
      await sample(
        registry,
        'noa_rate_limiter_check_duration_seconds_count{limiter="limiter",store="redis",result="timeout"}',
      ),
    ).toBeGreaterThanOrEqual(1);
  });
});
