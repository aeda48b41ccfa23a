import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateSentinel, startPrivateSentinel } from '../../src/index.js';

describe('startPrivateSentinel', () => {
  let sentinel: PrivateSentinel;
  beforeAll(async () => {
    const started = Date.now();
    sentinel = await startPrivateSentinel();
    console.log(`[private] sentinel (master, replica, 1 sentinel) started in ${Date.now() - started} ms`);
  }, 60_000);
  afterAll(() => sentinel?.stop());

  it('moves the master on failover() and on killMaster(), and its client follows with the data', async () => {
    const client = sentinel.client({ failoverDetector: true });
    try {
      await client.set('k', 'v');
      const first = await sentinel.masterPort();
      const second = await sentinel.failover();
      expect(second).not.toBe(first);
      expect(await sentinel.masterPort()).toBe(second);
      // The replica had the write before it was promoted.
      expect(await client.get('k')).toBe('v');
      await client.set('k', 'v2');
      const { port: third, promotedAfterMs } = await sentinel.killMaster();
      expect(third).toBe(first);
      // down-after-milliseconds is 1 s: the promotion comes after it.
      expect(promotedAfterMs).toBeGreaterThan(1_000);
      let value: string | null = null;
      for (let attempt = 0; attempt < 100 && value !== 'v2'; attempt += 1)
        value = await client.get('k').catch(() => null);
      expect(value).toBe('v2');
    } finally {
      client.disconnect();
    }
  }, 90_000);
});
