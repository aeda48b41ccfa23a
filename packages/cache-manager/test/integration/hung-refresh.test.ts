import { recordingLogger } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { eventually, redisUp, sharedRedisCaches } from './helpers.js';

// Issue 10, loose end 2: a background refresh (refresh-ahead here; XFetch takes the same path)
// whose factory never settles. It held the key's refresh slot for as long as the process lived:
// no later hit refreshed the key early again, whatever its age. It is abandoned once it has run
// `lock.leaseMs` (the bound a run of `getOrSet` is joined for, and the lease's own TTL, past which
// other instances refresh the key anyway): the next hit refreshes the key again, under a new lease.

const leaseMs = 300;

describe.skipIf(!redisUp)('a background refresh whose factory never settles', () => {
  const { prefix, open } = sharedRedisCaches('cm_hung_refresh');

  it('is abandoned after lock.leaseMs: a later hit refreshes the key again, once, and its value is cached', async () => {
    const logger = recordingLogger();
    const cache = await open({ logger, lock: { leaseMs } });
    // The threshold above the TTL: every hit after a write refreshes in the background.
    const options = { ttlMs: 60_000, refreshThresholdMs: 120_000 };
    await cache.set('key', 'v0', { ttlMs: 60_000 });
    let hungStarts = 0;
    const hung = () => {
      hungStarts += 1;
      return new Promise<string>(() => {});
    };
    expect(await cache.getOrSet('key', hung, options)).toBe('v0');
    expect(await eventually(() => hungStarts === 1)).toBe(true);
    // Later hits: each would refresh, but the hung run holds the key's refresh until it is
    // abandoned; then exactly one more refresh runs and its value is cached.
    let laterStarts = 0;
    const later = async () => {
      laterStarts += 1;
      return 'v1';
    };
    let hits = 0;
    const refreshed = await eventually(async () => {
      hits += 1;
      return (await cache.getOrSet('key', later, options)) === 'v1';
    }, 20 * leaseMs);
    console.log('hung refresh:', JSON.stringify({ hits, hungStarts, laterStarts }));
    expect(refreshed).toBe(true);
    expect(hungStarts).toBe(1);
    // The value of the new run was cached; every hit since refreshes it again (the threshold),
    // one run at a time: at most the hits made since.
    expect(laterStarts).toBeGreaterThanOrEqual(1);
    expect(
      logger
        .messages('warn')
        .filter((message) => message.startsWith('an early refresh outlived lock.leaseMs')),
    ).toHaveLength(1);
    // The hung run is superseded: its lease is not held, and L2 holds the new value.
    const other = await open({ bus: false });
    expect(await other.get('key')).toBe('v1');
  });

  it('a soft-timeout run that never settles is joined for lock.leaseMs only: then the key is computed again, once (held before this change)', async () => {
    const logger = recordingLogger();
    const cache = await open({ prefix: `${prefix}soft:`, logger, lock: { leaseMs }, earlyRefreshBeta: 0 });
    // Stale at once, in grace for a minute: each call below serves it after its soft timeout.
    await cache.set('key', 'v0', { ttlMs: 1, graceMs: 60_000 });
    let hungStarts = 0;
    const hung = () => {
      hungStarts += 1;
      return new Promise<string>(() => {});
    };
    const options = { ttlMs: 60_000, graceMs: 60_000, softTimeoutMs: 10 };
    // Polled until the value is stale and the hung run started (it serves v0 either way).
    expect(
      await eventually(async () => (await cache.getOrSet('key', hung, options)) === 'v0' && hungStarts === 1),
    ).toBe(true);
    let laterStarts = 0;
    const later = async () => {
      laterStarts += 1;
      return 'v1';
    };
    let calls = 0;
    const computed = await eventually(async () => {
      calls += 1;
      return (await cache.getOrSet('key', later, options)) === 'v1';
    }, 20 * leaseMs);
    console.log('hung soft-timeout run:', JSON.stringify({ calls, hungStarts, laterStarts }));
    expect(computed).toBe(true);
    expect(hungStarts).toBe(1);
    expect(laterStarts).toBe(1);
    // Said once as a call finds it past the lease, or (given up first, with no caller waiting at
    // that sweep: hung-runs.test.ts) only by the give-up's warning; never once per call.
    const warned = (start: string) => logger.messages('warn').filter((message) => message.startsWith(start));
    const outlived = warned('a factory run outlived lock.leaseMs').length;
    expect(outlived).toBeLessThanOrEqual(1);
    expect(outlived + warned('a factory run was abandoned').length).toBeGreaterThanOrEqual(1);
  });
});
