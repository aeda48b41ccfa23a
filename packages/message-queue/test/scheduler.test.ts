import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ClosedError, ConfigError } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  InvalidPayloadError,
  MemoryProvider,
  maxDelayMs,
  type NewJob,
  Queue,
  Scheduler,
} from '../src/index.js';
import { sleep } from './helpers.js';

const day = 86_400_000;

/** Every job the queue holds, whatever its state. */
async function jobCount(queue: Queue): Promise<number> {
  const counts = await queue.counts();
  return counts.waiting + counts.delayed + counts.active + counts.completed + counts.failed;
}

/** Runs the scheduler-only fixture process; its last line says how many ticks it added. */
function runAlone(keepAlive: 'default' | 'true' | 'false', intervalMs: number): string {
  const fixture = fileURLToPath(new URL('./fixtures/scheduler-alive.ts', import.meta.url));
  const child = spawnSync(
    process.execPath,
    ['--conditions=@noa/source', '--import', 'tsx', fixture, keepAlive, String(intervalMs)],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  return `${child.status} ${child.stdout.trim()}`;
}

describe('Scheduler keeps its process alive', () => {
  it('while it has schedules, as setInterval does (the process had exited before the first tick); close() lets it exit; keepAlive: false does not hold it', () => {
    expect(runAlone('default', 30)).toBe('0 exit 3');
    expect(runAlone('true', 30)).toBe('0 exit 3');
    // Ticks a minute apart: the process exits long before the third (a first tick aligned to the
    // interval may fall within its exit).
    expect(runAlone('false', 60_000)).toMatch(/^0 exit [01]$/);
    // Three tsx child processes one after another: over vitest's 5 s default on a loaded machine.
  }, 60_000);
});

describe('Scheduler timing', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('does not fire a cron tick more than 24.8 days away (past the longest Node timer) early', async () => {
    const queue = new Queue({ name: 'far-tick', provider: new MemoryProvider() });
    const scheduler = new Scheduler(queue);
    // A monthly-style pattern whose next tick is about 30 days out, whatever today is.
    const target = new Date(Date.now() + 30 * day);
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      scheduler.cron(
        'monthly',
        `0 0 ${target.getUTCDate()} ${target.getUTCMonth() + 1} *`,
        {
          name: 'invoice',
          data: null,
        },
        { timezone: 'UTC' },
      );
      await sleep(100);
      expect(await jobCount(queue)).toBe(0);
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
      await scheduler.close();
    }
  });

  it('after the wall clock jumps forward, fires the next tick once instead of every missed one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(1_000_000);
    const queue = new Queue({ name: 'jump', provider: new MemoryProvider() });
    const scheduler = new Scheduler(queue);
    scheduler.every('beat', 1_000, { name: 'beat', data: null });
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await jobCount(queue)).toBe(2);
    // NTP step, a resumed VM or a SIGCONT: ten minutes pass on the wall clock at once.
    vi.setSystemTime(Date.now() + 600_000);
    await vi.advanceTimersByTimeAsync(2_000);
    const afterJump = await jobCount(queue);
    await scheduler.close();
    // The tick armed before the jump, then the schedule goes on from the new time: not 600 stale ticks.
    expect(afterJump).toBeGreaterThanOrEqual(3);
    expect(afterJump).toBeLessThanOrEqual(5);
  });

  it('after the wall clock jumps back, fires no tick before its time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(1_000_000);
    const queue = new Queue({ name: 'jump-back', provider: new MemoryProvider() });
    const scheduler = new Scheduler(queue);
    scheduler.every('beat', 60_000, { name: 'beat', data: null });
    // The next tick is due at 1,020,000; the clock is stepped back 10 minutes before it.
    vi.setSystemTime(Date.now() - 600_000);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await jobCount(queue)).toBe(0);
    await scheduler.close();
  });
});

describe('Scheduler validation', () => {
  /** The fields a ConfigError names, or the error itself when it is something else. */
  const fieldsOf = (define: () => unknown): unknown => {
    try {
      define();
    } catch (error) {
      return error instanceof ConfigError ? error.fields : error;
    }
    return 'no error';
  };

  it('rejects a bad schedule at definition with a ConfigError naming the field', async () => {
    const queue = new Queue({ name: 'validate', provider: new MemoryProvider() });
    const scheduler = new Scheduler(queue);
    const job = { name: 'x', data: null };
    expect(fieldsOf(() => scheduler.every('zero', 0, job))).toEqual(['everyMs']);
    expect(fieldsOf(() => scheduler.cron('typo', '* * *', job))).toEqual(['pattern']);
    expect(fieldsOf(() => scheduler.cron('mars', '* * * * *', job, { timezone: 'Mars/Base' }))).toEqual([
      'timezone',
    ]);
    // Before: accepted, and every tick's add failed with only a log line (silent by default).
    expect(fieldsOf(() => scheduler.every('never', 1_000, { ...job, options: { attempts: 0 } }))).toEqual([
      'attempts',
    ]);
    expect(scheduler.names).toEqual([]);
    await scheduler.close();
  });

  it('rejects a cron that never fires, an empty name and an interval past maxDelayMs, naming the field', async () => {
    const queue = new Queue({ name: 'validate-never', provider: new MemoryProvider() });
    const scheduler = new Scheduler(queue);
    const job = { name: 'x', data: null };
    // Before: each was accepted without a word (Feb 30 never fires; '' made ids 'schedule::<t>').
    expect(fieldsOf(() => scheduler.cron('feb30', '0 0 30 2 *', job))).toEqual(['pattern']);
    expect(fieldsOf(() => scheduler.cron('', '* * * * *', job))).toEqual(['name']);
    expect(fieldsOf(() => scheduler.every('', 1_000, job))).toEqual(['name']);
    expect(fieldsOf(() => scheduler.every('huge', 2 ** 40, job))).toEqual(['everyMs']);
    expect(fieldsOf(() => scheduler.every('just-past', maxDelayMs + 1, job))).toEqual(['everyMs']);
    await expect(scheduler.once('', Date.now() + 1_000, job)).rejects.toMatchObject({ fields: ['name'] });
    expect(scheduler.names).toEqual([]);
    // The bounds themselves are taken.
    expect(fieldsOf(() => scheduler.every('longest', maxDelayMs, job))).toBe('no error');
    expect(fieldsOf(() => scheduler.cron('leap', '0 0 29 2 *', job))).toBe('no error');
    expect(scheduler.names.sort()).toEqual(['leap', 'longest']);
    await scheduler.close();
    expect(await jobCount(queue)).toBe(0);
  });

  it("rejects at definition a payload failing the queue's schema or JSON, and an unknown key (BullMQ's opts)", async () => {
    const queue = new Queue({
      name: 'validate-payload',
      provider: new MemoryProvider(),
      schema: z.object({ n: z.number() }),
    });
    const scheduler = new Scheduler(queue);
    const bad = { name: 'x', data: { n: 'one' } } as unknown as NewJob<{ n: number }>;
    const thrown = (define: () => unknown): unknown => {
      try {
        define();
      } catch (error) {
        return error;
      }
      return 'no error';
    };
    // Before: accepted, and every tick's add failed with only a log line (silent by default).
    for (const define of [
      () => scheduler.every('bad-every', 50, bad),
      () => scheduler.cron('bad-cron', '* * * * * *', bad),
    ]) {
      const error = thrown(define);
      expect(error).toBeInstanceOf(InvalidPayloadError);
      expect(error).toMatchObject({ fields: ['n'] });
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const plain = new Scheduler(new Queue({ name: 'validate-json', provider: new MemoryProvider() }));
    expect(thrown(() => plain.every('cyclic', 50, { name: 'x', data: cyclic }))).toBeInstanceOf(
      InvalidPayloadError,
    );
    // Before: `opts` was ignored with what it carried (here attempts: 1).
    const withOpts = { name: 'x', data: { n: 1 }, opts: { attempts: 1 } } as unknown as NewJob<{ n: number }>;
    expect(fieldsOf(() => scheduler.every('opts', 50, withOpts))).toEqual(['opts']);
    expect(scheduler.names).toEqual([]);
    expect(plain.names).toEqual([]);
    await sleep(150);
    expect(await jobCount(queue as Queue)).toBe(0);
    await scheduler.close();
    await plain.close();
  });

  it('after close() refuses new schedules with ClosedError; once() names atMs when it is not a time', async () => {
    const queue = new Queue({ name: 'validate-closed', provider: new MemoryProvider() });
    const scheduler = new Scheduler(queue);
    await expect(scheduler.once('nan', Number.NaN, { name: 'x', data: null })).rejects.toMatchObject({
      fields: ['atMs'],
    });
    await expect(
      scheduler.once('far', Date.now() + 10 * maxDelayMs, { name: 'x', data: null }),
    ).rejects.toMatchObject({ fields: ['atMs'] });
    await scheduler.close();
    const error = fieldsOf(() => scheduler.every('late', 1_000, { name: 'x', data: null }));
    expect(error).toBeInstanceOf(ClosedError);
    expect(error).toMatchObject({ code: 'NOA_CLOSED' });
  });
});

describe('Scheduler close', () => {
  it("waits for a tick's add under way, so closing the provider right after loses no tick", async () => {
    const memory = new MemoryProvider();
    let started = 0;
    let stored = 0;
    // A backend that takes 100 ms to store an add (a round trip under load).
    const slow = new Proxy(memory, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target) as unknown;
        if (typeof value !== 'function') return value;
        if (key !== 'add') return value.bind(target);
        return async (...args: Parameters<MemoryProvider['add']>) => {
          started += 1;
          await sleep(100);
          const added = await memory.add(...args);
          stored += 1;
          return added;
        };
      },
    });
    const queue = new Queue({ name: 'close-mid-add', provider: slow });
    const scheduler = new Scheduler(queue);
    scheduler.every('tick', 20, { name: 'tick', data: null });
    while (started === 0) await sleep(5);
    // Before: close() returned at once; a shutdown that then closed the provider lost the tick
    // (its add rejected, seen only in a warning), with no other instance to add it.
    await scheduler.close();
    expect(stored).toBe(started);
    expect(await jobCount(queue)).toBe(stored);
  });

  it('gives up on a tick add the backend does not answer after closeTimeoutMs, naming it in a warning', async () => {
    const memory = new MemoryProvider();
    let started = 0;
    const frozen = new Proxy(memory, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target) as unknown;
        if (typeof value !== 'function') return value;
        if (key !== 'add') return value.bind(target);
        return () => {
          started += 1;
          return new Promise(() => {});
        };
      },
    });
    const logger = recordingLogger();
    const scheduler = new Scheduler(new Queue({ name: 'close-frozen', provider: frozen }), {
      logger,
      closeTimeoutMs: 100,
    });
    scheduler.every('tick', 20, { name: 'tick', data: null });
    while (started === 0) await sleep(5);
    await scheduler.close();
    expect(logger.lines('warn').join('\n')).toMatch(/tick adds unconfirmed.*schedule:tick:/);
  });
});
