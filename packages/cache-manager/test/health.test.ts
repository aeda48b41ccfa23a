import { ClosedError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { cacheHealth, checkedCacheHealth } from '../src/health.js';
import { Cache } from '../src/index.js';

const failure = new Error('connect ECONNREFUSED');
const l2 = (
  breaker: 'closed' | 'open' | 'half-open',
  answering: boolean,
  lastError?: unknown,
  partFailing = false,
) => ({
  breaker,
  answering,
  partFailing,
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

  it('is degraded, in both modes, while one master of a Cluster fails and the others answer', () => {
    for (const onBackendError of ['degrade', 'throw'] as const)
      expect(
        cacheHealth({
          closed: false,
          l1Entries: 1,
          onBackendError,
          l2: l2('closed', true, failure, true),
          now: 0,
        }),
      ).toMatchObject({
        status: 'degraded',
        cause: failure,
        details: { l2: 'closed', l2Answering: true, l2PartFailing: true },
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

describe('checkedCacheHealth', () => {
  const state = (
    breaker: 'closed' | 'open' | 'half-open',
    onBackendError: 'degrade' | 'throw' = 'degrade',
  ) => ({
    closed: false,
    l1Entries: 0,
    onBackendError,
    l2: { breaker, answering: false, partFailing: false, lastError: new Error('earlier call failed') },
    now: 5,
  });
  const timeout = new Error('no answer');

  it('a PING answered with the breaker closed is up, whatever the last call did', () => {
    const report = checkedCacheHealth(state('closed'), { answered: true });
    expect(report).toMatchObject({ status: 'up', details: { probe: 'answered' } });
    expect(report).not.toHaveProperty('cause');
  });

  it('a PING answered with the breaker open keeps the passive verdict', () => {
    expect(checkedCacheHealth(state('open'), { answered: true }).status).toBe('degraded');
    expect(checkedCacheHealth(state('half-open', 'throw'), { answered: true }).status).toBe('down');
  });

  it('a failed or late PING is degraded (down when set to throw) with its error, breaker closed or not', () => {
    expect(
      checkedCacheHealth(state('closed'), { answered: false, timedOut: true, error: timeout }),
    ).toMatchObject({
      status: 'degraded',
      cause: timeout,
      details: { probe: 'timeout', l2Answering: false },
    });
    expect(
      checkedCacheHealth(state('closed', 'throw'), { answered: false, timedOut: false, error: timeout }),
    ).toMatchObject({ status: 'down', details: { probe: 'failed' } });
  });

  it('memory-only and closed caches keep the passive report', () => {
    const memory = { closed: false, l1Entries: 0, onBackendError: 'degrade' as const, l2: undefined, now: 1 };
    expect(checkedCacheHealth(memory, { answered: false, timedOut: true, error: timeout }).status).toBe('up');
    expect(checkedCacheHealth({ ...state('closed'), closed: true }, { answered: true }).status).toBe('down');
  });
});
