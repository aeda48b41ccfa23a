import { describe, expect, it } from 'vitest';
import { CircuitOpenError, ConfigError, createCircuitBreaker, delay } from '../src/index.js';

describe('createCircuitBreaker', () => {
  it('opens after consecutive failures, probes half-open, closes on success', async () => {
    const breaker = createCircuitBreaker('redis', { consecutiveFailures: 2, halfOpenAfterMs: 30 });
    const states: string[] = [];
    breaker.onStateChange((state) => states.push(state));
    const fail = () => Promise.reject(new Error('down'));
    await expect(breaker.execute(fail)).rejects.toThrow('down');
    await expect(breaker.execute(fail)).rejects.toThrow('down');
    expect(breaker.state).toBe('open');
    let called = false;
    await expect(
      breaker.execute(async () => {
        called = true;
      }),
    ).rejects.toBeInstanceOf(CircuitOpenError);
    expect(called).toBe(false);
    await delay(50);
    // A caller that skips calls while 'open' must still see when a probe is due.
    expect(breaker.state).toBe('half-open');
    await expect(breaker.execute(async () => 'ok')).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('rejects bad options with a ConfigError naming the field', () => {
    expect(() => createCircuitBreaker('redis', { failureRatio: 2 })).toThrow(ConfigError);
    expect(() => createCircuitBreaker('redis', { failureRatio: 2 })).toThrow(/failureRatio/);
    // cockatiel's SamplingBreaker refuses 1 with a bare RangeError; the schema names the field.
    expect(() => createCircuitBreaker('redis', { failureRatio: 1 })).toThrow(ConfigError);
    expect(() => createCircuitBreaker('redis', { failureRatio: 1 })).toThrow(/failureRatio/);
  });
});

describe('a half-open breaker with concurrent calls', () => {
  async function halfOpenBreaker() {
    const breaker = createCircuitBreaker('probe', { consecutiveFailures: 1, halfOpenAfterMs: 30 });
    const states: string[] = [];
    breaker.onStateChange((state) => states.push(state));
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    await delay(40);
    return { breaker, states };
  }

  it('lets one probe through; the others wait for it and are refused when it fails', async () => {
    const { breaker, states } = await halfOpenBreaker();
    expect(breaker.state).toBe('half-open');
    let calls = 0;
    let failProbe = (): void => {};
    const probe = breaker.execute(
      () =>
        new Promise<void>((_resolve, reject) => {
          calls += 1;
          failProbe = () => reject(new Error('still down'));
        }),
    );
    const others = [1, 2].map((value) =>
      breaker
        .execute(async () => {
          calls += 1;
          return value;
        })
        .catch((error: unknown) => error),
    );
    await delay(10);
    expect(calls).toBe(1);
    failProbe();
    await expect(probe).rejects.toThrow('still down');
    for (const outcome of await Promise.all(others)) expect(outcome).toBeInstanceOf(CircuitOpenError);
    expect(calls).toBe(1);
    expect(breaker.state).toBe('open');
    expect(states).toEqual(['open', 'half-open', 'open']);
  });

  it('runs the waiting calls once the probe succeeds, and closes', async () => {
    const { breaker, states } = await halfOpenBreaker();
    const results = await Promise.all([1, 2, 3].map((value) => breaker.execute(async () => value)));
    expect(results).toEqual([1, 2, 3]);
    expect(breaker.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });
});
