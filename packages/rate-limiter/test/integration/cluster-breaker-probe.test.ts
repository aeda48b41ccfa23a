import { once } from 'node:events';
import { delay } from '@noa/core';
import { recordingLogger, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type DecisionSource } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { defaultNamespace } from '../rule-namespace.js';

// On a Redis Cluster the breaker's way back is a PING of every master that succeeds when any
// answers (RedisStore.pingAnyPart), not a batch of user checks: with every master stalled, a
// trial check waited out the deadline each halfOpenAfterMs. And one master still stalled when the
// others are back must not hold the breaker open for their keys.

const { cluster, skip } = await startRedisClusterOrSkip(3);
const limits = [{ limit: 1_000_000, windowMs: 60_000 }];
const prefix = 'cluster-probe:';
const timedOut =
  'noa_rate_limiter_check_duration_seconds_count{limiter="limiter",store="redis",result="timeout"}';

/** One sample of the registry (exact name with labels), 0 when absent. */
async function sample(registry: Registry, name: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

describe.skipIf(skip !== undefined)('the breaker on a 3-master Cluster probes by PING', () => {
  const clients: (Cluster | Redis)[] = [];
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  it('every master stalled: no check is the half-open trial; the breaker closes once two masters answer, the third stalled', async () => {
    const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
    client.on('error', () => {});
    clients.push(client);
    await once(client, 'ready');
    const registry = new Registry();
    const logger = recordingLogger();
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits,
      deadlineMs: 25,
      failMode: 'local',
      breaker: { halfOpenAfterMs: 200 },
      localBlockCache: false,
      registry,
      logger,
    });
    const masterOf = (key: string) =>
      client.slots[clusterSlot(`${prefix}{${defaultNamespace(limits)}${key}}`)]![0]!;
    const keys = Array.from({ length: 300 }, (_, index) => `user-${index}`);
    const stalled = masterOf(keys[0]!);
    const onStalled = keys.filter((key) => masterOf(key) === stalled).slice(0, 10);
    const elsewhere = keys.filter((key) => masterOf(key) !== stalled).slice(0, 20);
    expect(new Set(elsewhere.map(masterOf)).size).toBe(2);
    // Warmed (connections, scripts), then every answer is the store's.
    for (const key of [...onStalled, ...elsewhere]) await limiter.check(key);
    for (const key of [...onStalled, ...elsewhere]) expect((await limiter.check(key)).source).toBe('store');

    const admins = new Map<string, Redis>(
      cluster!.nodes.map(({ host, port }) => [`${host}:${port}`, new Redis(port, host)] as const),
    );
    clients.push(...admins.values());
    // ALL, so PINGs wait too. The pauses end by themselves (an UNPAUSE would wait as well): the
    // other masters' first, the stalled one's well after.
    await admins.get(stalled)!.call('CLIENT', 'PAUSE', '15000', 'ALL');
    await Promise.all(
      [...admins]
        .filter(([address]) => address !== stalled)
        .map(([, admin]) => admin.call('CLIENT', 'PAUSE', '5000', 'ALL')),
    );

    // Checks one at a time on the other masters' keys until the breaker opens (a second without
    // any answer, then a run of 10 timed-out checks).
    let checks = 0;
    while (!limiter.fallbackActive && checks < 400) {
      await limiter.check(elsewhere[checks % elsewhere.length]!);
      checks += 1;
    }
    expect(limiter.fallbackActive).toBe(true);
    const timedOutAtOpen = await sample(registry, timedOut);

    // Every master still stalled for a while: checks go on (several halfOpenAfterMs periods),
    // each answered by the fail mode at once, none waiting out the deadline as a trial.
    const states = new Set<string>();
    const sources: Partial<Record<DecisionSource, number>> = {};
    for (let index = 0; index < 150; index += 1) {
      const { source } = await limiter.check(elsewhere[index % elsewhere.length]!);
      sources[source] = (sources[source] ?? 0) + 1;
      states.add(String(limiter.health().details?.breaker));
      await delay(5);
    }
    // Checks of the other masters' keys only: if their masters came back meanwhile, their checks
    // were answered, and no check of ours waited out a deadline after the breaker opened.
    expect((sources.fallback ?? 0) + (sources.store ?? 0)).toBe(150);
    expect(sources.fallback ?? 0).toBeGreaterThan(0);
    expect(await sample(registry, timedOut)).toBe(timedOutAtOpen);
    // Half-open while its PING was out.
    expect(states).toContain('half-open');

    // The two masters back, the third still stalled: a probe answered by them closes the breaker,
    // their keys get the store's answers, and the stalled master's keys fail alone.
    // (Each master ends its pause on its own cron, up to 100 ms apart: both have answered first.)
    const answered = new Set<string>();
    for (let attempt = 0; attempt < 500 && answered.size < 2; attempt += 1) {
      const key = elsewhere[attempt % elsewhere.length]!;
      if ((await limiter.check(key)).source === 'store') answered.add(masterOf(key));
      else await delay(20);
    }
    expect(answered.size).toBe(2);
    const after = {
      stalled: new Map<DecisionSource, number>(),
      elsewhere: new Map<DecisionSource, number>(),
    };
    const count = (where: 'stalled' | 'elsewhere', source: DecisionSource) =>
      after[where].set(source, (after[where].get(source) ?? 0) + 1);
    for (let index = 0; index < 10; index += 1) {
      count('stalled', (await limiter.check(onStalled[index]!)).source);
      count('elsewhere', (await limiter.check(elsewhere[index]!)).source);
    }
    expect(Object.fromEntries(after.elsewhere)).toEqual({ store: 10 });
    expect(Object.fromEntries(after.stalled)).toEqual({ fallback: 10 });
    expect(limiter.health().details?.breaker).toBe('closed');
    expect(logger.messages('info')).toContain('rate-limit store breaker closed: store back in use');
    await limiter.close();
  }, 60_000);
});
