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
