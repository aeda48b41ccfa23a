import { describe, expect, it } from 'vitest';
import { ConfigError, HealthProbeGate, probeBackend, probedHealth, TimeoutError } from '../src/index.js';

interface Report {
  status: string;
  n?: number;
  timeoutMs?: number;
}

/** A gate whose probe answers when the test says, counting how often it was started. */
function gate(state: { closed: boolean } = { closed: false }) {
  const probes: Array<(report: Report) => void> = [];
  const health = new HealthProbeGate<Report>({
    probe: () => new Promise<Report>((resolve) => probes.push(resolve)),
    timedOut: (timeoutMs) => ({ status: 'timeout', timeoutMs }),
    closed: () => (state.closed ? { status: 'closed' } : undefined),
  });
  return { health, probes, state };
}

describe('HealthProbeGate', () => {
  it('sends one probe for concurrent checks and gives them its answer', async () => {
    const { health, probes } = gate();
    const checks = [
      health.check({ maxAgeMs: 0 }),
      health.check({ maxAgeMs: 0 }),
      health.check({ maxAgeMs: 0 }),
    ];
    await Promise.resolve();
    expect(probes).toHaveLength(1);
    probes[0]!({ status: 'up', n: 1 });
    expect(await Promise.all(checks)).toEqual([
      { status: 'up', n: 1 },
      { status: 'up', n: 1 },
      { status: 'up', n: 1 },
    ]);
  });

  it('reuses an answer younger than maxAgeMs, asks again with maxAgeMs 0', async () => {
    const { health, probes } = gate();
    const first = health.check({});
    await Promise.resolve();
    probes[0]!({ status: 'up', n: 1 });
    await first;
    expect(await health.check({})).toEqual({ status: 'up', n: 1 });
    expect(probes).toHaveLength(1);
    const again = health.check({ maxAgeMs: 0 });
    await Promise.resolve();
    expect(probes).toHaveLength(2);
    probes[1]!({ status: 'down', n: 2 });
    expect(await again).toEqual({ status: 'down', n: 2 });
  });

  it('answers timedOut(timeoutMs) when the probe is late; the next check joins the same probe', async () => {
    const { health, probes } = gate();
    expect(await health.check({ timeoutMs: 20, maxAgeMs: 0 })).toEqual({ status: 'timeout', timeoutMs: 20 });
    const late = health.check({ timeoutMs: 1_000, maxAgeMs: 0 });
    await Promise.resolve();
    expect(probes).toHaveLength(1);
    probes[0]!({ status: 'up', n: 1 });
    expect(await late).toEqual({ status: 'up', n: 1 });
  });

  it("does not give one caller's timeout to later callers: they join the probe, then reuse its late answer", async () => {
    const { health, probes } = gate();
    expect(await health.check({ timeoutMs: 20, maxAgeMs: 60_000 })).toEqual({
      status: 'timeout',
      timeoutMs: 20,
    });
    // A caller with a longer timeoutMs, within maxAgeMs of that timeout, waits for the same probe.
    const patient = health.check({ timeoutMs: 5_000, maxAgeMs: 60_000 });
    await Promise.resolve();
    expect(probes).toHaveLength(1);
    probes[0]!({ status: 'up', n: 1 });
    expect(await patient).toEqual({ status: 'up', n: 1 });
    // The answer that came after the first caller gave up is the one reused, not its timeout.
    expect(await health.check({ timeoutMs: 20, maxAgeMs: 60_000 })).toEqual({ status: 'up', n: 1 });
    expect(probes).toHaveLength(1);
  });

  it('keeps the answer of a probe every caller stopped waiting for', async () => {
    const { health, probes } = gate();
    expect(await health.check({ timeoutMs: 20, maxAgeMs: 60_000 })).toEqual({
      status: 'timeout',
      timeoutMs: 20,
    });
    probes[0]!({ status: 'up', n: 1 });
    await new Promise((resolve) => setImmediate(resolve));
    expect(await health.check({ timeoutMs: 20, maxAgeMs: 60_000 })).toEqual({ status: 'up', n: 1 });
    expect(probes).toHaveLength(1);
  });

  it('answers the closed report without probing, and refuses bad options with a ConfigError', async () => {
    const { health, probes, state } = gate({ closed: true });
    expect(await health.check(undefined)).toEqual({ status: 'closed' });
    expect(probes).toHaveLength(0);
    state.closed = false;
    for (const [options, field] of [
      [{ timeoutMs: 0 }, 'timeoutMs'],
      [{ timeoutMS: 100 }, 'timeoutMS'],
      [{ maxAgeMs: -1 }, 'maxAgeMs'],
    ] as const) {
      const error = await health.check(options as object).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).fields.join(' ')).toContain(field);
    }
  });
});

describe('probeBackend', () => {
  it('says timedOut when its own deadline passed, failed when the ping rejected', async () => {
    const late = await probeBackend(() => new Promise(() => {}), 20, 'test PING');
    expect(late).toMatchObject({ answered: false, timedOut: true });
    expect((late as { error: unknown }).error).toBeInstanceOf(TimeoutError);
    const passive = { component: 'c', status: 'up' as const, checkedAt: 0, details: {} };
    const backend = { failStatus: 'down' as const, breakerClosed: true };
    expect(probedHealth(passive, late, backend)).toMatchObject({
      status: 'down',
      details: { probe: 'timeout' },
    });
    const refused = await probeBackend(() => Promise.reject(new Error('ECONNREFUSED')), 1_000, 'test PING');
    expect(refused).toMatchObject({ answered: false, timedOut: false });
    expect(probedHealth(passive, refused, backend)).toMatchObject({
      status: 'down',
      details: { probe: 'failed' },
    });
    expect(await probeBackend(() => Promise.resolve('PONG'), 1_000, 'test PING')).toEqual({ answered: true });
  });
});
