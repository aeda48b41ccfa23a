import { ClosedError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { limiterHealth } from '../src/health.js';
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
