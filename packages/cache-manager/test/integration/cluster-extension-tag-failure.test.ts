import { delay } from '@noa/core';
import { uniqueName } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { usePrivateCluster } from './redis-server.js';
import { total } from './registry-counters.js';

/**
 * On a Cluster the extension of a value a run replaces sends its tag sets' `PEXPIRE … GT` beside
 * the value's script (see cluster-extension-tags.test.ts). When one of those fails (here: the
 * user may not run PEXPIRE, as a tag set's master that is down or refuses it would), the
 * script's own answer must still count: a key that changed since the read (another instance
 * wrote it) stops the renewals, as it did when the sets were extended only after a 1. Before,
 * the failed PEXPIRE turned the answer into "Redis unavailable", and the run renewed (and
 * counted a failure) every period until it settled.
 *
 * A private Cluster: ACL users must not reach other suites.
 */
const { installed, client: cluster, nodes } = usePrivateCluster('a tag set extension failing on a Cluster');
const prefix = `${uniqueName('cm_extension_tag_failure')}:`;
const caches: Cache[] = [];
const clients: Cluster[] = [];
afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  for (const client of clients) client.disconnect();
});

describe.skipIf(!installed)('a run whose tag sets cannot be extended on a Redis Cluster', () => {
  beforeAll(async () => {
    for (const node of nodes()) {
      const admin = new Redis(node.port, node.host);
      await admin.call('ACL', 'SETUSER', 'no-pexpire', 'on', '>secret', '~*', '&*', '+@all', '-pexpire');
      admin.disconnect();
    }
  });

  it('stops renewing once the value’s script finds the key changed', async () => {
    const key = 'tagged';
    const tags = ['t-one', 't-two'];
    const restricted = new Cluster(nodes(), { redisOptions: { username: 'no-pexpire', password: 'secret' } });
    restricted.on('error', () => {});
    clients.push(restricted);
    await new Promise<void>((resolve) => restricted.once('ready', () => resolve()));
    const registry = new Registry();
    // Renewals every 200 ms: the first at 200 ms into the run.
    const a = new Cache({
      redis: restricted,
      prefix,
      bus: false,
      registry,
      operationTimeoutMs: 200,
      lock: { leaseMs: 200 },
    });
    const b = new Cache({ redis: cluster(), prefix, bus: false });
    caches.push(a, b);
    await Promise.all([a.ready(), b.ready()]);
    await b.set(key, 'first', { ttlMs: 50, graceMs: 60_000, tags });
    await delay(100);
    let finished!: () => void;
    const finish = new Promise<void>((resolve) => {
      finished = resolve;
    });
    const served = a.getOrSet(
      key,
      async () => {
        await finish;
        return 'refreshed';
      },
      { ttlMs: 60_000, tags, softTimeoutMs: 0 },
    );
    // Served from grace at once; the run goes on. Its first extension fails (PEXPIRE refused).
    expect(await served).toBe('first');
    await delay(50);
    // Another instance rewrites the key before the first renewal: the run's write will lose.
    await b.set(key, 'second', { ttlMs: 60_000, tags });
    const failures = () =>
      total(registry, 'noa_cache_manager_degraded_operations_total', { operation: 'refresh_extend' });
    // The first renewal (at 200 ms) finds the key changed: renewals stop there (a second of
    // margin for a loaded machine).
    await delay(1_000);
    const afterChange = await failures();
    await delay(1_200);
    const later = await failures();
    finished();
    expect(later).toBe(afterChange);
    await delay(200);
    expect(await b.get(key)).toBe('second');
  });
});
