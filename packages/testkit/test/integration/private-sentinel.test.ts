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

  // failover() and killMaster() are exercised (and their outcome checked) by the rate limiter's
  // and the cache's sentinel-failover tests; this one keeps to the set-up, as each failover
  // costs CI 10-15 s.
  it('serves a master through its sentinel, replicated to the replica', async () => {
    const client = sentinel.client({ failoverDetector: true });
    try {
      await client.set('k', 'v');
      const master = await sentinel.masterPort();
      // The client is on the master the sentinel names.
      expect(await client.info('server')).toContain(`tcp_port:${master}\r\n`);
      await client.wait(1, 5_000);
      expect(await client.get('k')).toBe('v');
    } finally {
      client.disconnect();
    }
  }, 30_000);
});
