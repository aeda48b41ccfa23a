import { delay, TimeoutError } from '@noa/core';
import { busyFor, startEchoProcess } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { DeadlineQueue } from '../src/l2/deadline-queue.js';

describe('DeadlineQueue', () => {
  it('passes values and errors through when work settles in time', async () => {
    const queue = new DeadlineQueue(1_000);
    await expect(queue.run(Promise.resolve(1), 'op')).resolves.toBe(1);
    await expect(queue.run(Promise.reject(new Error('boom')), 'op')).rejects.toThrow('boom');
  });

  it('rejects every hung operation with TimeoutError, each after its own deadline', async () => {
    const queue = new DeadlineQueue(20);
    const never = new Promise<never>(() => {});
    const first = queue.run(never, 'first').catch((error: unknown) => error);
    await delay(10);
    const second = queue.run(never, 'second').catch((error: unknown) => error);
    const quick = queue.run(Promise.resolve('fine'), 'quick');
    expect(await quick).toBe('fine');
    const [a, b] = await Promise.all([first, second]);
    expect(a).toBeInstanceOf(TimeoutError);
    expect(b).toBeInstanceOf(TimeoutError);
    expect((b as TimeoutError).details).toMatchObject({ operation: 'second', timeoutMs: 20 });
  });

  // As core's withDeadline: the reply that came in while the process was busy past the deadline
  // answers; an L2 read must not time out (and count against the breaker) when Redis answered.
  it('resolves a reply that came in while the process was busy past the deadline', async () => {
    const echo = await startEchoProcess();
    try {
      const queue = new DeadlineQueue(50);
      const answered = queue.run(echo.request('ping'), 'echo');
      busyFor(500);
      await expect(answered).resolves.toBe('ping');
      await expect(queue.run(new Promise<never>(() => {}), 'never')).rejects.toBeInstanceOf(TimeoutError);
    } finally {
      echo.close();
    }
  });
});
