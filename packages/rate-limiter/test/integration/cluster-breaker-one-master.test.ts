import { once } from 'node:events';
import { defaultConsecutiveFailures } from '@noa/core';
import { recordingLogger, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type DecisionSource } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { defaultNamespace } from '../rule-namespace.js';

// The default breaker opens on the failure ratio or a run of 10 failed calls. On a Cluster at low
// traffic each call is one key, so with one master of three down a run of calls can all land on
// it by chance ((1/3)^10 per run: about once an hour at 10 checks/s): that run must not open the
// breaker for every key, sending the healthy masters' keys to the fail mode for halfOpenAfterMs
// (README: one master down does not send the other masters' keys to the fail mode). Here the
// run is made on purpose: more than 10 checks in a row of keys on the stalled master.

const { cluster, skip } = await startRedisClusterOrSkip(3);
const limits = [{ limit: 1_000_000, windowMs: 60_000 }];
const prefix = 'breaker-one-master:';

describe.skipIf(skip !== undefined)('one master of a 3-master Cluster stalled, low traffic', () => {
  const clients: (Cluster | Redis)[] = [];
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  it('a run of checks on the stalled master does not open the breaker: the other masters’ keys keep their store answers', async () => {
    const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
    client.on('error', () => {});
    clients.push(client);
    await once(client, 'ready');
    const logger = recordingLogger();
    // Low traffic as the limiter's clock sees it: one check every 25 ms, whatever the machine's
    // load. A failure counts for the breaker only past a second (core's partAnswerWindowMs) since
    // a part last answered, and the run below is 20 checks: on the real clock, with each stalled
    // check waiting out its deadline, a loaded machine could stretch it past that second. And a
    // deadline of 100 ms, not 25: on a loaded machine a healthy master's answer once took longer
    // (`{ store: 29, 'fail-mode': 1 }`, 1 run in 6 beside two busy loops).
    let clockMs = Date.now();
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits,
      failMode: 'closed',
      logger,
      localBlockCache: false,
      deadlineMs: 100,
      clock: { now: () => clockMs },
    });
    const check = (key: string) => {
      clockMs += 25;
      return limiter.check(key);
    };
    const masterOf = (key: string) =>
      client.slots[clusterSlot(`${prefix}{${defaultNamespace(limits)}${key}}`)]![0]!;
    const keys = Array.from({ length: 300 }, (_, index) => `user-${index}`);
    const stalled = masterOf(keys[0]!);
    const onStalled = keys
      .filter((key) => masterOf(key) === stalled)
      .slice(0, 2 * defaultConsecutiveFailures);
    const elsewhere = keys.filter((key) => masterOf(key) !== stalled).slice(0, 20);
    expect(onStalled.length).toBe(2 * defaultConsecutiveFailures);
    expect(new Set(elsewhere.map(masterOf)).size).toBe(2);
    // Healthy traffic first (every master answers). The first checks on a new client may outlive
    // the deadline (connections, script loads): warmed once, then every answer is the store's.
    for (const key of [...onStalled, ...elsewhere]) await check(key);
    for (const key of [...onStalled, ...elsewhere]) expect((await check(key)).source).toBe('store');
    const [host, port] = stalled.split(':');
    const admin = new Redis(Number(port), host!);
    clients.push(admin);
    // WRITE: the checks' scripts wait, CLIENT UNPAUSE (at the end) does not.
    await admin.call('CLIENT', 'PAUSE', '30000', 'WRITE');
    try {
      const sources = {
        stalled: new Map<DecisionSource, number>(),
        elsewhere: new Map<DecisionSource, number>(),
      };
      const count = (where: 'stalled' | 'elsewhere', source: DecisionSource) =>
        sources[where].set(source, (sources[where].get(source) ?? 0) + 1);
      // Low traffic: one check at a time, each its own call. A run of 20 on the stalled master,
      // then the other masters' keys, then interleaved.
      for (const key of onStalled) count('stalled', (await check(key)).source);
      for (const key of elsewhere) count('elsewhere', (await check(key)).source);
      for (let index = 0; index < 10; index += 1) {
        count('stalled', (await check(onStalled[index]!)).source);
        count('elsewhere', (await check(elsewhere[index]!)).source);
      }
      expect(Object.fromEntries(sources.elsewhere)).toEqual({ store: 30 });
      expect(Object.fromEntries(sources.stalled)).toEqual({ 'fail-mode': 30 });
      expect(logger.messages('warn')).not.toContain('rate-limit store breaker open: fail mode applies');
      expect(limiter.fallbackActive).toBe(false);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }
    await limiter.close();
  });

  it('every master stalled: the breaker still opens (after a second without any answer, then a run of 10)', async () => {
    const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
    client.on('error', () => {});
    clients.push(client);
    await once(client, 'ready');
    const logger = recordingLogger();
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: `${prefix}all:` }),
      limits,
      failMode: 'closed',
      logger,
      localBlockCache: false,
      // As in the first case: the warmed checks below must be the store's, and a loaded machine
      // once made one outlive 25 ms (this case failed at 529 ms, with the suite's files beside it).
      deadlineMs: 100,
    });
    const keys = Array.from({ length: 30 }, (_, index) => `user-${index}`);
    for (const key of keys) await limiter.check(key);
    for (const key of keys) expect((await limiter.check(key)).source).toBe('store');
    const admins = cluster!.nodes.map(({ host, port }) => new Redis(port, host));
    clients.push(...admins);
    await Promise.all(admins.map((admin) => admin.call('CLIENT', 'PAUSE', '30000', 'WRITE')));
    try {
      // One check at a time, each waiting out its deadline (100 ms), until the breaker opens:
      // about 10 in the second without answers, then 10 counted; at most 200 (20 s).
      let checks = 0;
      while (!limiter.fallbackActive && checks < 200) {
        await limiter.check(keys[checks % keys.length]!);
        checks += 1;
      }
      expect(limiter.fallbackActive).toBe(true);
      expect(logger.messages('warn')).toContain('rate-limit store breaker open: fail mode applies');
      expect(checks).toBeGreaterThanOrEqual(defaultConsecutiveFailures);
    } finally {
      await Promise.all(admins.map((admin) => admin.call('CLIENT', 'UNPAUSE')));
    }
    await limiter.close();
  });
});
