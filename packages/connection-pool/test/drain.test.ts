import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { DrainTimeoutError, Pool } from '../src/index.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function trackedFactory() {
  let nextId = 0;
  const aborted: number[] = [];
  const destroyed: number[] = [];
  return {
    aborted,
    destroyed,
    factory: {
      create: async () => ({ id: ++nextId }),
      destroy: async (resource: { id: number }) => {
        destroyed.push(resource.id);
      },
      abort: (resource: { id: number }) => {
        aborted.push(resource.id);
      },
    },
  };
}

/** The rejection of `promise`, or 'hung' when it does not settle within 2 s (a hang reads as one). */
function outcome(promise: Promise<unknown>): Promise<unknown> {
  return Promise.race([
    promise.then(
      () => 'resolved',
      (error: unknown) => error,
    ),
    sleep(2_000).then(() => 'hung'),
  ]);
}

describe('drain() is bounded', () => {
  it('rejects after timeoutMs with DrainTimeoutError naming the connections never released, and closes them', async () => {
    const { factory, aborted, destroyed } = trackedFactory();
    const pool = new Pool(factory, { name: 'leaky', max: 3 });
    const held = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    pool.release(held[2]!);
    const error = await outcome(pool.drain({ timeoutMs: 50 }));
    expect(error).toBeInstanceOf(DrainTimeoutError);
    const timeout = error as DrainTimeoutError;
    expect(timeout.code).toBe('NOA_POOL_DRAIN_TIMEOUT');
    expect(timeout.message).toBe('leaky: 2 connections still lent after drain() waited 50 ms; closed them');
    expect(timeout.details).toEqual({ pool: 'leaky', timeoutMs: 50, unreleased: 2 });
    expect(timeout.unreleased).toHaveLength(2);
    expect(aborted.sort()).toEqual([held[0]!.id, held[1]!.id].sort());
    expect(destroyed.sort()).toEqual(held.map((resource) => resource.id).sort());
    expect(pool.stats).toMatchObject({ active: 0, idle: 0, size: 0 });
    // Releasing one afterwards is ignored, as after close().
    pool.release(held[0]!);
  });

  it('waits closeTimeoutMs by default, and resolves when everything comes back in time', async () => {
    const pool = new Pool(trackedFactory().factory, { max: 1, closeTimeoutMs: 40 });
    await pool.acquire();
    expect(await outcome(pool.drain())).toBeInstanceOf(DrainTimeoutError);

    const polite = new Pool(trackedFactory().factory, { max: 1, closeTimeoutMs: 40 });
    const held = await polite.acquire();
    const draining = polite.drain({ timeoutMs: 1_000 });
    setTimeout(() => polite.release(held), 10);
    expect(await outcome(draining)).toBe('resolved');
  });

  it('refuses a bad option with a ConfigError naming it', async () => {
    const pool = new Pool(trackedFactory().factory, { max: 1 });
    for (const [options, field] of [
      [{ timeout: 5 }, 'timeout'],
      [{ timeoutMs: -1 }, 'timeoutMs'],
    ] as const) {
      const error = await outcome(pool.drain(options as never));
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).fields).toEqual([field]);
    }
    await pool.close();
  });

  it('an ESM program awaiting drain() with a connection never released settles and exits on its own (not 13)', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/drain-exit.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', fixture], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(killer);
    expect(out.trim()).toBe('rejected NOA_POOL_DRAIN_TIMEOUT 1 0');
    expect(code).toBe(0);
  }, 40_000);
});
