import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import winston from 'winston';
import { createRateLimiter } from '../src/index.js';
import { FlakyStore } from './flaky-store.js';

// README "Metrics and logging", as a user wires it: a prom-client Registry and a winston logger
// (passed as is). Each listed metric exists with its type and labels, moves as the table says,
// has bounded label values (no keys), and limiters share a registry without "already registered".

const readme = readFileSync(path.resolve(import.meta.dirname, '../README.md'), 'utf8');

/** The metrics table of the README: name, type and label names (besides `limiter`). */
function documentedMetrics(): { name: string; type: string; labels: string[] }[] {
  return readme
    .split('\n')
    .filter((line) => line.startsWith('| `noa_rate_limiter_'))
    .map((line) => {
      const [, name, type, labels] = line.split('|').map((cell) => cell.trim());
      const labelNames = [...labels!.matchAll(/`([a-z_]+)` \(/g)].map((match) => match[1]!);
      return { name: name!.replaceAll('`', ''), type: type!, labels: labelNames };
    });
}

/** A winston logger writing JSON lines into `lines`. */
function winstonLogger(): { logger: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, lines };
}

/** The value of each series of `metric` (sample name included for histograms), keyed by labels. */
async function series(registry: Registry, metric: string): Promise<Map<string, number>> {
  const text = await registry.metrics();
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    const at = line.lastIndexOf(' ');
    found.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return found;
}

async function value(registry: Registry, sample: string): Promise<number> {
  const name = sample.split('{')[0]!;
  return (await series(registry, name)).get(sample) ?? 0;
}

describe('every metric the README lists, on an injected registry', () => {
  it('exists from construction with its type, exactly the documented labels and a help text; no other', async () => {
    const documented = documentedMetrics();
    expect(documented.map((metric) => metric.name)).toHaveLength(8);
    const registry = new Registry();
    const { logger } = winstonLogger();
    const limiter = createRateLimiter({
      name: 'api',
      store: new FlakyStore(),
      limits: [{ limit: 5, windowMs: 60_000 }],
      registry,
      logger,
    });
    for (const { name, type, labels } of documented) {
      const metric = registry.getSingleMetric(name) as unknown as { labelNames: string[] } | undefined;
      expect(metric, name).toBeDefined();
      const { type: actualType, help } = await (
        registry.getSingleMetric(name) as unknown as { get(): Promise<{ type: string; help: string }> }
      ).get();
      expect(actualType, name).toBe(type);
      expect(help.length, name).toBeGreaterThan(10);
      expect([...metric!.labelNames].sort(), name).toEqual(['limiter', ...labels].sort());
    }
    // A help text that enumerates a label's values names the README's, no more, no fewer.
    const errorsHelp = (await registry.getMetricsAsJSON()).find(
      (metric) => metric.name === 'noa_rate_limiter_store_errors_total',
    )?.help;
    const kinds = readme.match(/`kind` \(([^)]*)\)/)?.[1]?.split(', ');
    expect(
      errorsHelp
        ?.match(/\(([^)]*)\)/)?.[1]
        ?.split(', ')
        .sort(),
    ).toEqual(kinds?.sort());
    const registered = (await registry.getMetricsAsJSON()).map((metric) => metric.name);
    expect(registered.filter((name) => name.startsWith('noa_rate_limiter_')).sort()).toEqual(
      documented.map((metric) => metric.name).sort(),
    );
    await limiter.close();
  });
});

describe('with a winston logger and a registry, the metrics move as documented', () => {
  it('allowed, limited, blocked, store errors (error, timeout, circuit_open), durations, fallback gauge, breaker log lines', async () => {
    const registry = new Registry();
    const { logger, lines } = winstonLogger();
    const store = new FlakyStore();
    const limiter = createRateLimiter({
      name: 'api',
      store,
      limits: [{ limit: 1, windowMs: 60_000 }],
      registry,
      logger,
      failMode: 'local',
      deadlineMs: 20,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 50 },
    });
    const checks = (result: string, source: string) =>
      value(registry, `noa_rate_limiter_checks_total{limiter="api",result="${result}",source="${source}"}`);
    const errors = (kind: string) =>
      value(registry, `noa_rate_limiter_store_errors_total{limiter="api",kind="${kind}"}`);
    const timed = (result: string) =>
      value(
        registry,
        `noa_rate_limiter_check_duration_seconds_count{limiter="api",store="flaky",result="${result}"}`,
      );
    const fallback = () => value(registry, 'noa_rate_limiter_fallback_active{limiter="api"}');

    expect(await fallback()).toBe(0);
    await limiter.check('a');
    await limiter.check('a');
    await limiter.block('b', 60_000);
    expect((await limiter.check('b')).outcome).toBe('blocked');
    expect(await checks('allowed', 'store')).toBe(1);
    expect(await checks('limited', 'store')).toBe(1);
    // block() also puts the key in the local block cache, which answers its checks.
    expect(await checks('blocked', 'local_cache')).toBe(1);
    expect(await value(registry, 'noa_rate_limiter_adjustments_total{limiter="api",operation="block"}')).toBe(
      1,
    );
    expect(await timed('ok')).toBe(2);

    store.hung = true;
    expect((await limiter.check('c')).source).toBe('fallback');
    expect(await errors('timeout')).toBe(1);
    expect(await timed('timeout')).toBe(1);
    store.hung = false;
    store.down = true;
    await limiter.check('d');
    await limiter.check('e'); // the third failure in a row: the breaker opens
    expect(await errors('error')).toBe(2);
    expect(await timed('error')).toBe(2);
    expect(await fallback()).toBe(1);
    await limiter.check('f'); // skipped by the open breaker, not timed
    expect(await errors('circuit_open')).toBe(1);
    expect(await timed('error')).toBe(2);
    expect(await checks('allowed', 'fallback')).toBe(4);

    store.down = false;
    // The breaker half-opens after halfOpenAfterMs (real time: cockatiel's clock); a probe
    // the store answers closes it.
    await vi.waitFor(
      async () => {
        await limiter.check('g');
        expect(await fallback()).toBe(0);
      },
      { timeout: 5_000, interval: 60 },
    );
    expect(await checks('allowed', 'store')).toBeGreaterThanOrEqual(2);

    const rateLimiterLines = lines.filter((line) => line.component === 'rate-limiter');
    const failed = rateLimiterLines.filter(
      (line) => line.message === 'rate-limit store call failed; applying fail mode',
    );
    // Sampled: one warning for the outage's failed calls (all within logIntervalMs).
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 'warn', store: 'flaky', failMode: 'local' });
    expect(rateLimiterLines.filter((line) => line.level === 'warn' || line.level === 'info')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          level: 'warn',
          message: 'rate-limit store breaker open: fail mode applies',
          store: 'flaky',
        }),
        expect.objectContaining({
          level: 'info',
          message: 'rate-limit store breaker closed: store back in use',
          store: 'flaky',
          suppressed: expect.any(Number),
        }),
      ]),
    );
    await limiter.close();
    // A closed limiter takes its share out of the gauge.
    expect(await fallback()).toBe(0);
  });
});

describe('an outage is logged, not each call it fails; the metrics count every failed call', () => {
  it('100 failed refunds: one winston warning, store_errors_total 100', async () => {
    const registry = new Registry();
    const { logger, lines } = winstonLogger();
    const store = new FlakyStore();
    store.down = true;
    const limiter = createRateLimiter({
      name: 'api',
      store,
      limits: [{ limit: 5, windowMs: 60_000 }],
      registry,
      logger,
      failMode: 'open',
      breaker: { consecutiveFailures: 1_000_000 },
    });
    for (let index = 0; index < 100; index += 1) await expect(limiter.refund(`k${index}`)).rejects.toThrow();
    const refundLines = lines.filter((line) => line.message === 'rate-limit refund failed');
    expect(refundLines).toHaveLength(1);
    expect(refundLines[0]).toMatchObject({
      level: 'warn',
      component: 'rate-limiter',
      store: 'flaky',
      kind: 'error',
    });
    expect(await value(registry, 'noa_rate_limiter_store_errors_total{limiter="api",kind="error"}')).toBe(
      100,
    );
    await limiter.close();
  });
});

describe('label values are bounded: no key is a label', () => {
  it('a thousand keys add no series; no series names a key', async () => {
    const registry = new Registry();
    const store = new FlakyStore();
    const limiter = createRateLimiter({
      name: 'api',
      store,
      limits: [{ limit: 1, windowMs: 60_000 }],
      registry,
      breaker: { consecutiveFailures: 1_000_000 },
      deny: ['192.0.2.7'],
    });
    const round = async (from: number, count: number) => {
      for (let index = from; index < from + count; index += 1) {
        const key = `user-${index}`;
        await limiter.check(key);
        await limiter.check(key);
        await limiter.check({ key, ip: '192.0.2.7' });
        await limiter.peek(key);
        await limiter.refund(key);
        await limiter.acquire(key, { timeoutMs: 1 }).catch(() => {});
      }
      store.down = true;
      await limiter.check(`user-${from}-down`);
      store.down = false;
    };
    await round(0, 10);
    const before = (await registry.metrics()).split('\n').length;
    await round(10, 1_000);
    const text = await registry.metrics();
    expect(text.split('\n').length).toBe(before);
    expect(text).not.toMatch(/user-/);
    await limiter.close();
  }, 30_000);
});

describe('limiters sharing a registry', () => {
  it('any mix of names and stores, made, closed and made again, never throws "already registered"', async () => {
    const registry = new Registry();
    const { logger } = winstonLogger();
    const limits = [{ limit: 2, windowMs: 60_000 }];
    const make = (options: { name?: string; prefix: string; remote?: boolean }) =>
      createRateLimiter({
        ...(options.name === undefined ? {} : { name: options.name }),
        prefix: options.prefix,
        limits,
        registry,
        logger,
        ...(options.remote ? { store: new FlakyStore() } : {}),
      });
    const first = [
      make({ name: 'login', prefix: 'login' }),
      make({ name: 'api', prefix: 'api', remote: true }),
      make({ name: 'api', prefix: 'api-2' }),
      make({ prefix: 'plain-1' }),
      make({ prefix: 'plain-2', remote: true }),
    ];
    for (const limiter of first) {
      await limiter.check('k');
      await limiter.acquire('k');
    }
    await Promise.all(first.map((limiter) => limiter.close()));
    const again = make({ name: 'login', prefix: 'login' });
    await again.check('k');
    // acquire() counts its checks too: 2 per limiter, and the login limiter made again adds 1.
    const allowed = (name: string) =>
      value(registry, `noa_rate_limiter_checks_total{limiter="${name}",result="allowed",source="store"}`);
    expect(await allowed('login')).toBe(3);
    expect(await allowed('api')).toBe(4);
    expect(await allowed('limiter')).toBe(4);
    await again.close();
  });
});
