import { ClosedError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { checkedLimiterHealth, limiterHealth } from '../src/health.js';
import { createRateLimiter } from '../src/index.js';

const failure = new Error('connect ECONNREFUSED');
const remote = (breaker: 'closed' | 'open' | 'half-open', lastFailure?: unknown) => ({
  breaker,
  lastFailure,
});

describe('limiterHealth', () => {
  it('is up with a memory store, and with a remote store answering', () => {
    expect(
      limiterHealth({ closed: false, store: 'memory', failMode: 'local', remote: undefined, now: 7 }),
    ).toEqual({
      component: 'rate-limiter',
      status: 'up',
      checkedAt: 7,
      details: { store: 'memory', failMode: 'local' },
    });
    const up = limiterHealth({
      closed: false,
      store: 'redis',
      failMode: 'closed',
      remote: remote('closed'),
      now: 7,
    });
    expect(up).toMatchObject({ status: 'up', details: { breaker: 'closed', fallback: false } });
    expect(up).not.toHaveProperty('cause');
  });

  it('is degraded while the store is bypassed and the fail mode answers (local, open)', () => {
    for (const failMode of ['local', 'open'] as const)
      for (const state of [remote('open', failure), remote('half-open', failure), remote('closed', failure)])
        expect(
          limiterHealth({ closed: false, store: 'redis', failMode, remote: state, now: 0 }),
        ).toMatchObject({
          status: 'degraded',
          cause: failure,
          details: { failMode, breaker: state.breaker, fallback: true },
        });
  });

  it('is down while the store is bypassed with failMode closed (every request refused)', () => {
    expect(
      limiterHealth({
        closed: false,
        store: 'redis',
        failMode: 'closed',
        remote: remote('open', failure),
        now: 0,
      }),
    ).toMatchObject({ status: 'down', cause: failure });
  });

  it('is down after close(), with a ClosedError', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    expect(limiter.health()).toMatchObject({ status: 'up', details: { store: 'memory' } });
    await limiter.close();
    const report = limiter.health();
    expect(report.status).toBe('down');
    expect(report.cause).toBeInstanceOf(ClosedError);
  });
});

describe('checkedLimiterHealth', () => {
  const state = (
    breaker: 'closed' | 'open' | 'half-open',
    failMode: 'local' | 'open' | 'closed' = 'local',
  ) => ({
    closed: false,
    store: 'redis',
    failMode,
    remote: { breaker, lastFailure: new Error('earlier check failed') },
    now: 5,
  });
  const timeout = new Error('no answer');

  it('a PING answered with the breaker closed is up, whatever the last check did', () => {
    const report = checkedLimiterHealth(state('closed'), { answered: true });
    expect(report).toMatchObject({ status: 'up', details: { probe: 'answered' } });
    expect(report).not.toHaveProperty('cause');
  });

  it('a PING answered with the breaker open keeps the fail mode’s verdict', () => {
    expect(checkedLimiterHealth(state('open'), { answered: true }).status).toBe('degraded');
    expect(checkedLimiterHealth(state('half-open', 'closed'), { answered: true }).status).toBe('down');
  });

  it('a failed or late PING is the fail mode’s verdict with its error, breaker closed or not', () => {
    expect(
      checkedLimiterHealth(state('closed', 'open'), { answered: false, timedOut: true, error: timeout }),
    ).toMatchObject({
      status: 'degraded',
      cause: timeout,
      details: { probe: 'timeout' },
    });
    expect(
      checkedLimiterHealth(state('closed', 'closed'), { answered: false, timedOut: false, error: timeout }),
    ).toMatchObject({ status: 'down', details: { probe: 'failed' } });
  });

  it('a store without ping(), a store in this process and a closed limiter keep the passive report', () => {
    expect(checkedLimiterHealth(state('open'), undefined)).toMatchObject({
      status: 'degraded',
      details: { probe: 'unsupported' },
    });
    const memory = { closed: false, store: 'memory', failMode: 'local' as const, remote: undefined, now: 1 };
    expect(checkedLimiterHealth(memory, { answered: false, timedOut: true, error: timeout }).status).toBe(
      'up',
    );
    expect(checkedLimiterHealth({ ...state('closed'), closed: true }, { answered: true }).status).toBe(
      'down',
    );
  });
});
