import { describe, expect, it } from 'vitest';
import { probedHealth, probeTimedOut } from '../src/index.js';

/**
 * A health check whose caller stopped waiting at its `timeoutMs` (a `HealthProbeGate`'s
 * `timedOut`) reports the backend not answering, by timeout, with the package's own timeout
 * error as `cause`: the outcome the cache's and the rate limiter's checks both build.
 */
describe('probeTimedOut', () => {
  const passive = { component: 'c', status: 'up' as const, checkedAt: 7, details: { store: 'redis' } };

  it('is a probe not answered, by timeout, whose error is the one given', () => {
    const error = new Error('no answer within 20 ms');
    expect(probeTimedOut(error)).toEqual({ answered: false, timedOut: true, error });
  });

  it('makes probedHealth report the fail status, probe timeout, the error as cause', () => {
    const error = new Error('no answer within 20 ms');
    const backend = {
      failStatus: 'degraded' as const,
      breakerClosed: true,
      notAnswering: { answering: false },
    };
    expect(probedHealth(passive, probeTimedOut(error), backend)).toEqual({
      component: 'c',
      status: 'degraded',
      checkedAt: 7,
      details: { store: 'redis', probe: 'timeout', answering: false },
      cause: error,
    });
  });
});
