import { ConfigError, maxTimerMs } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Pool, type ResourceFactory } from '../src/index.js';
import { sleep, until } from './poll.js';

interface Conn {
  id: number;
}

/** A factory whose destroy never settles for the ids in `hangs` (a server that never answers the goodbye). */
function hangingFactory(hangs: Set<number>) {
  let nextId = 0;
  const aborted: number[] = [];
  const factory: ResourceFactory<Conn> = {
    create: async () => ({ id: ++nextId }),
    destroy: (conn) => (hangs.has(conn.id) ? new Promise<void>(() => {}) : Promise.resolve()),
    abort: (conn) => {
      aborted.push(conn.id);
    },
  };
  return { factory, aborted };
}

function recordingLogger() {
  const warnings: { message: string; fields: Record<string, unknown> | undefined }[] = [];
  const logger = {
    debug: () => {},
    info: () => {},
    warn: (message: string, fields?: Record<string, unknown>) => warnings.push({ message, fields }),
    error: () => {},
    child: () => logger,
  };
  return { logger, warnings };
}

async function destroyTimeouts(registry: Registry, pool: string): Promise<number> {
  const text = await registry.metrics();
  const match = text.match(
    new RegExp(`noa_connection_pool_errors_total\\{pool="${pool}",kind="destroy_timeout"\\} (\\d+)`),
  );
  return match === null ? 0 : Number(match[1]);
}

// coopernurse/node-pool#288: a destroy whose promise never settles hung pool.clear() for ever.
describe('Pool: a destroy that never settles (destroyTimeoutMs)', () => {
  it('close() goes on past destroyTimeoutMs: the destroy is abandoned (aborted, logged at warn, counted as destroy_timeout)', async () => {
    const { factory, aborted } = hangingFactory(new Set([1]));
    const { logger, warnings } = recordingLogger();
    const registry = new Registry();
    const pool = new Pool(factory, { name: 'hang-close', destroyTimeoutMs: 50, logger, registry });
    pool.release(await pool.acquire());
    const started = performance.now();
    const report = await Promise.race([pool.close(), sleep(3_000).then(() => 'hung' as const)]);
    expect(report).toEqual({ unreleased: [] });
    // Generous bound: it waited for the destroy, but not for ever.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(aborted).toEqual([1]);
    expect(warnings.some((warning) => /destroyTimeoutMs/.test(warning.message))).toBe(true);
    expect(await destroyTimeouts(registry, 'hang-close')).toBe(1);
  });

  it('a hanging destroy from destroy(), invalidate() or eviction holds no slot and is abandoned after destroyTimeoutMs', async () => {
    const { factory, aborted } = hangingFactory(new Set([1, 2, 3]));
    const registry = new Registry();
    const pool = new Pool(factory, {
      name: 'hang-background',
      max: 2,
      destroyTimeoutMs: 30,
      idleTimeoutMs: 20,
      evictionIntervalMs: 10,
      registry,
    });
    const [one, two] = await Promise.all([pool.acquire(), pool.acquire()]);
    pool.destroy(one!);
    pool.release(two!);
    pool.invalidate(two!);
    // Both slots are free at once: max 2 lets two new ones open while the destroys hang.
    const [three, four] = await Promise.all([
      pool.acquire({ timeoutMs: 500 }),
      pool.acquire({ timeoutMs: 500 }),
    ]);
    expect([three!.id, four!.id]).toEqual([3, 4]);
    pool.release(three!);
    pool.release(four!);
    await until(() => aborted.length === 3); // 3 evicted after idleTimeoutMs, its destroy hangs too
    expect(aborted.sort()).toEqual([1, 2, 3]);
    expect(await destroyTimeouts(registry, 'hang-background')).toBe(3);
    const started = performance.now();
    await pool.close();
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('defaults to 5000 ms; bounded like the other durations', () => {
    const { factory } = hangingFactory(new Set());
    const pool = new Pool(factory);
    expect(pool.options.destroyTimeoutMs).toBe(5_000);
    void pool.close();
    expect(() => new Pool(factory, { destroyTimeoutMs: 0 })).toThrow(ConfigError);
    expect(() => new Pool(factory, { destroyTimeoutMs: maxTimerMs + 1 })).toThrow(/destroyTimeoutMs/);
  });
});
