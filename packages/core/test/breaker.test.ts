import { CircuitState } from 'cockatiel';
import { describe, expect, it } from 'vitest';
import { RatioOrRunBreaker } from '../src/breaker.js';
import {
  type BreakerProbe,
  CircuitOpenError,
  ConfigError,
  createCircuitBreaker,
  defaultConsecutiveFailures,
  delay,
} from '../src/index.js';

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

describe('RatioOrRunBreaker: the ratio or a run of failures', () => {
  const options = { failureRatio: 0.5, samplingDurationMs: 5_000, minimumRps: 5, consecutiveFailures: 3 };

  it('opens on a run of failures though the ratio over the window is low', () => {
    const breaker = new RatioOrRunBreaker(options);
    for (let index = 0; index < 100; index += 1) breaker.success(CircuitState.Closed);
    expect(breaker.failure(CircuitState.Closed)).toBe(false);
    expect(breaker.failure(CircuitState.Closed)).toBe(false);
    expect(breaker.failure(CircuitState.Closed)).toBe(true);
  });

  it('a success ends the run', () => {
    const breaker = new RatioOrRunBreaker(options);
    for (let index = 0; index < 100; index += 1) breaker.success(CircuitState.Closed);
    for (let round = 0; round < 10; round += 1) {
      expect(breaker.failure(CircuitState.Closed)).toBe(false);
      expect(breaker.failure(CircuitState.Closed)).toBe(false);
      expect(breaker.run).toBe(2);
      breaker.success(CircuitState.Closed);
      expect(breaker.run).toBe(0);
    }
  });

  it('opens on the ratio though no run is long enough', () => {
    // Alternating failures: never two in a row, but 2 of 3 calls fail (above 0.5), 30 calls.
    const breaker = new RatioOrRunBreaker(options);
    let opened = false;
    for (let index = 0; index < 30 && !opened; index += 1) {
      if (index % 3 === 0) breaker.success(CircuitState.Closed);
      else opened = breaker.failure(CircuitState.Closed);
      expect(breaker.run).toBeLessThan(3);
    }
    expect(opened).toBe(true);
  });

  it('consecutiveFailures set explicitly is the run alone, as before: the ratio does not open it', async () => {
    const breaker = createCircuitBreaker('redis', { consecutiveFailures: 1_000, halfOpenAfterMs: 30 });
    for (let index = 0; index < 100; index += 1)
      await expect(breaker.execute(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(breaker.state).toBe('closed');
  });

  it('defaults to a run of 10 with the ratio kept', async () => {
    expect(defaultConsecutiveFailures).toBe(10);
    const breaker = createCircuitBreaker('redis', { halfOpenAfterMs: 30 });
    const fail = () => Promise.reject(new Error('down'));
    for (let index = 0; index < 50; index += 1) await breaker.execute(async () => index);
    for (let index = 0; index < 9; index += 1) await expect(breaker.execute(fail)).rejects.toThrow('down');
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(fail)).rejects.toThrow('down');
    expect(breaker.state).toBe('open');
  });
});

describe('a breaker with a probe', () => {
  async function openBreaker(probe: BreakerProbe) {
    const breaker = createCircuitBreaker('redis', { consecutiveFailures: 1, halfOpenAfterMs: 30 }, { probe });
    const states: string[] = [];
    breaker.onStateChange((state) => states.push(state));
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    expect(breaker.state).toBe('open');
    return { breaker, states };
  }

  it('runs the probe, once, instead of a user call; refuses user calls at once meanwhile', async () => {
    let probes = 0;
    let answer = (_ok: boolean): void => {};
    const { breaker, states } = await openBreaker(
      () =>
        new Promise((resolve, reject) => {
          probes += 1;
          answer = (ok) => (ok ? resolve('PONG') : reject(new Error('still down')));
        }),
    );
    let userCalls = 0;
    const user = async () => {
      userCalls += 1;
      return 'user';
    };
    // Not due yet: refused, no probe.
    await expect(breaker.execute(user)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(probes).toBe(0);
    await delay(40);
    expect(breaker.state).toBe('half-open');
    // Due: the call that finds it due starts the probe and is refused; so are those meanwhile.
    for (let index = 0; index < 5; index += 1)
      await expect(breaker.execute(user)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(probes).toBe(1);
    expect(userCalls).toBe(0);
    expect(breaker.state).toBe('half-open');
    // A failed probe opens it again for halfOpenAfterMs.
    answer(false);
    await delay(0);
    expect(breaker.state).toBe('open');
    await expect(breaker.execute(user)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(probes).toBe(1);
    await delay(40);
    await expect(breaker.execute(user)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(probes).toBe(2);
    // A probe that succeeds closes it: user calls run again.
    answer(true);
    await delay(0);
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(user)).resolves.toBe('user');
    expect(userCalls).toBe(1);
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
  });

  it('a probe that throws synchronously counts as failed', async () => {
    const { breaker, states } = await openBreaker(() => {
      throw new Error('no client');
    });
    await delay(40);
    await expect(breaker.execute(async () => 1)).rejects.toBeInstanceOf(CircuitOpenError);
    await delay(0);
    expect(breaker.state).toBe('open');
    expect(states).toEqual(['open', 'half-open', 'open']);
  });
});
