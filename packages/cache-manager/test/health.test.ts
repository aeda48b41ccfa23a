import { ClosedError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { cacheHealth } from '../src/health.js';
import { Cache } from '../src/index.js';

const failure = new Error('connect ECONNREFUSED');
const l2 = (breaker: 'closed' | 'open' | 'half-open', answering: boolean, lastError?: unknown) => ({
  breaker,
  answering,
  lastError,
});

describe('cacheHealth', () => {
  it('is up memory-only, and with Redis answering', () => {
    expect(
      cacheHealth({ closed: false, l1Entries: 3, onBackendError: 'degrade', l2: undefined, now: 9 }),
    ).toEqual({
      component: 'cache',
      status: 'up',
      checkedAt: 9,
      details: { l1Entries: 3, l2: 'none' },
    });
    const up = cacheHealth({
      closed: false,
      l1Entries: 0,
      onBackendError: 'throw',
      l2: l2('closed', true),
      now: 0,
    });
    expect(up).toMatchObject({ status: 'up', details: { l2: 'closed', l2Answering: true } });
    expect(up).not.toHaveProperty('cause');
  });

  it('is degraded while Redis is bypassed (breaker not closed, or last call failed): L1 serves', () => {
    for (const state of [
      l2('open', false, failure),
      l2('half-open', false, failure),
      l2('closed', false, failure),
    ])
      expect(
        cacheHealth({ closed: false, l1Entries: 1, onBackendError: 'degrade', l2: state, now: 0 }),
      ).toMatchObject({
        status: 'degraded',
        cause: failure,
        details: { l2: state.breaker, l2Answering: false },
      });
  });

  it("is down while Redis is bypassed with onBackendError: 'throw' (calls reject)", () => {
    expect(
      cacheHealth({
        closed: false,
        l1Entries: 1,
        onBackendError: 'throw',
        l2: l2('open', false, failure),
        now: 0,
      }),
    ).toMatchObject({ status: 'down', cause: failure });
  });

  it('is down after close(), with a ClosedError', async () => {
    const cache = new Cache({});
    await cache.set('a', 1);
    expect(cache.health()).toMatchObject({ status: 'up', details: { l1Entries: 1, l2: 'none' } });
    await cache.close();
    expect(cache.health().status).toBe('down');
    expect(cache.health().cause).toBeInstanceOf(ClosedError);
  });
});

describe('Cache.health() while Redis refuses connections', () => {
  it('names the not-connected cause by its class and code, so a probe body says what it is', async () => {
    const { Redis } = await import('ioredis');
    // Port 1 on loopback: refused at once, no server involved.
    const redis = new Redis({ host: '127.0.0.1', port: 1, retryStrategy: () => 50, maxRetriesPerRequest: 0 });
    redis.on('error', () => {});
    const cache = new Cache({ redis, prefix: 'health-refused:' });
    try {
      const giveUp = Date.now() + 10_000;
      while (cache.health().status === 'up' && Date.now() < giveUp) {
        await cache.getOrSet('k', async () => 1);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const report = cache.health();
      expect(report.status).toBe('degraded');
      expect(report.cause).toMatchObject({ name: 'NotConnectedError', code: 'NOA_CACHE_NOT_CONNECTED' });
    } finally {
      await cache.close();
      redis.disconnect();
    }
  });
});
