import { recordingLogger, startRedisClusterOrSkip } from '@noa/testkit';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { observingEvalsha } from './evalsha-observer.js';
import { eventually } from './helpers.js';
import { keySlot } from './key-slot.js';
import { settledSlotMasters, stallTolerantCluster } from './redis-server.js';

// Issue 10, loose end 3: a getOrSet holds a key's lease on a 3-master Cluster, and the master of
// that key (its value, its lease) stalls (CLIENT PAUSE ALL) while the factory runs. The holder
// keeps the value it replaces in Redis while the run lasts (the extension and its renewals, see
// long-run-extension.test.ts): on the stalled master each renewal outlives its deadline. What the
// holder does then, and what the waiters on the other instances get once the master is back.

const { cluster, skip } = await startRedisClusterOrSkip(3);
const prefix = 'lease-stalled:';
const operationTimeoutMs = 200;
const leaseMs = 400;

describe.skipIf(skip !== undefined)('a lease holder whose key’s master stalls (3-master Cluster)', () => {
  const clients: (Cluster | Redis)[] = [];
  const caches: Cache[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    for (const cache of caches) await cache.close();
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  const connect = (): Promise<Cluster> => stallTolerantCluster(cluster!.nodes, clients);

  it('renews one call at a time until the run settles, no rejection escapes, and every instance ends on the value in L2 once the master is back', async () => {
    // The slot map as the Cluster says it (the client's own may be mid-update): a bounded search.
    const masters = await settledSlotMasters(await connect());
    const masterOf = (redisKey: string) => masters[keySlot(redisKey)]!;
    // A key whose value and lease live on the same master: that master's stall takes both
    // (about 1 key in 3 qualifies).
    let key = '';
    for (let index = 0; key === ''; index += 1) {
      if (index === 10_000) throw new Error('no key with its value and lease on one master in 10,000');
      // Of varied lengths (see cluster-lease-paused-master's keysWhere: CRC16 is linear).
      const candidate = `k${'x'.repeat(index % 32)}${index}`;
      if (masterOf(`${prefix}v:${candidate}`) === masterOf(`${prefix}__lease:${candidate}`)) key = candidate;
    }
    const master = masterOf(`${prefix}v:${key}`);
    const valueKey = `${prefix}v:${key}`;
    // The holder's script calls on the key's value (the extension, its renewals, the write):
    // how many were sent, and the most in flight at once.
    const calls = { sent: 0, inFlight: 0, mostInFlight: 0 };
    const holderClient = scriptsOn(await connect(), valueKey, calls);
    const options = {
      prefix,
      operationTimeoutMs,
      lock: { leaseMs, timeoutMs: 20_000, pollMs: 50 },
    };
    const holderLogger = recordingLogger();
    const holder = new Cache({ redis: holderClient as Cluster, logger: holderLogger, ...options });
    const waiters = await Promise.all(
      [0, 1].map(async () => new Cache({ redis: await connect(), ...options })),
    );
    caches.push(holder, ...waiters);
    await Promise.all([holder, ...waiters].map((cache) => cache.ready()));
    // A value in grace in L2: the holder's run replaces it, and keeps it in Redis meanwhile.
    await holder.set(key, 'v0', { ttlMs: 1, graceMs: 60_000 });

    let release!: (value: string) => void;
    const runs: string[] = [];
    const held = holder.getOrSet(
      key,
      () => {
        runs.push('holder');
        return new Promise<string>((resolve) => {
          release = resolve;
        });
      },
      { ttlMs: 60_000 },
    );
    expect(await eventually(() => runs.length === 1)).toBe(true);
    // The waiters find the lease taken and poll L2 for the holder's value.
    const waiting = waiters.map((waiter, index) =>
      waiter.getOrSet(
        key,
        async () => {
          runs.push(`waiter ${index}`);
          return `from waiter ${index}`;
        },
        { ttlMs: 60_000 },
      ),
    );
    const [host, port] = master.split(':');
    const admin = new Redis(Number(port), host!);
    admin.on('error', () => {});
    clients.push(admin);
    const before = calls.sent;
    await admin.call('CLIENT', 'PAUSE', '3000', 'ALL');
    // A renewal sent into the stall (it outlives its deadline, unanswered)…
    expect(await eventually(() => calls.sent > before, 20 * leaseMs)).toBe(true);
    // …and the stall lasts several renewal periods (3 s, a period 0.4 s).
    await admin.ping(); // answered once the pause is over
    const sentInStall = calls.sent - before;
    release('v1');
    expect(await held).toBe('v1');
    const sentBySettle = calls.sent;
    const waiterValues = await Promise.all(waiting);
    // Every instance ends on what L2 holds (the lost writes' messages go out again once Redis
    // answers, and each instance drops its own copy of what it wrote).
    const reader = new Cache({ redis: await connect(), prefix, bus: false });
    caches.push(reader);
    let inL2: unknown;
    const converged = await eventually(async () => {
      inL2 = await reader.get(key);
      const seen = await Promise.all([holder, ...waiters].map((cache) => cache.get(key)));
      return inL2 !== undefined && seen.every((value) => value === inL2);
    }, 20_000);
    console.log(
      'lease holder on a stalled master:',
      JSON.stringify({
        calls,
        sentBySettle,
        sentInStall,
        waiterValues,
        runs,
        inL2,
        stats: holder.stats().degraded,
      }),
    );
    // One unanswered renewal at a time: none is sent while the last one waits for the master
    // (before: one more per period, all unanswered until the stall ended).
    expect(calls.mostInFlight).toBe(1);
    // One renewal period's call, or two if one was sent (and answered) as the pause began.
    expect(sentInStall).toBeLessThanOrEqual(2);
    // The run's write, if any, is the only call after it settled (no renewal).
    expect(calls.sent - sentBySettle).toBeLessThanOrEqual(1);
    // The waiters' polls failed on the stalled master: each ran its own factory, once (in-process
    // single flight, as with Redis down), and got its value; none failed.
    expect(waiterValues).toEqual(['from waiter 0', 'from waiter 1']);
    expect(runs.sort()).toEqual(['holder', 'waiter 0', 'waiter 1']);
    expect(converged).toBe(true);
    expect(unhandled).toEqual([]);
  });
});

/**
 * `client`, counting the EVALSHA calls whose first key is `valueKey` into `calls` (sent, in
 * flight, the most in flight at once).
 */
function scriptsOn(
  client: Cluster,
  valueKey: string,
  calls: { sent: number; inFlight: number; mostInFlight: number },
) {
  return observingEvalsha(client, (_sha, firstKey, reply) => {
    if (firstKey !== valueKey) return;
    calls.sent += 1;
    calls.inFlight += 1;
    calls.mostInFlight = Math.max(calls.mostInFlight, calls.inFlight);
    const settled = () => {
      calls.inFlight -= 1;
    };
    reply.then(settled, settled);
  });
}
