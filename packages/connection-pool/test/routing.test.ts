import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplicaBalancer } from '../src/routing/replica-balancer.js';
import { SessionTracker } from '../src/routing/session-tracker.js';
import { StatementCache } from '../src/statement-cache.js';

const replicaArb = fc.array(fc.record({ healthy: fc.boolean(), busy: fc.nat(20) }), { maxLength: 6 });

describe('ReplicaBalancer', () => {
  it('property: only ever picks a healthy replica, and picks one whenever one is healthy', () => {
    fc.assert(
      fc.property(replicaArb, fc.constantFrom('round-robin', 'least-busy' as const), (replicas, strategy) => {
        const balancer = new ReplicaBalancer(replicas, strategy);
        for (let round = 0; round < 10; round += 1) {
          const picked = balancer.pick();
          if (replicas.some((replica) => replica.healthy)) expect(picked?.healthy).toBe(true);
          else expect(picked).toBeUndefined();
        }
      }),
    );
  });

  it('property: least-busy picks a healthy replica with the smallest load', () => {
    fc.assert(
      fc.property(replicaArb, (replicas) => {
        const picked = new ReplicaBalancer(replicas, 'least-busy').pick();
        const healthy = replicas.filter((replica) => replica.healthy);
        if (healthy.length === 0) return;
        expect(picked!.busy).toBe(Math.min(...healthy.map((replica) => replica.busy)));
      }),
    );
  });

  it('round robin spreads evenly and skips the excluded replica', () => {
    const replicas = [0, 1, 2].map((id) => ({ id, healthy: true, busy: 0 }));
    const balancer = new ReplicaBalancer(replicas, 'round-robin');
    const counts = [0, 0, 0];
    for (let index = 0; index < 30; index += 1) counts[balancer.pick()!.id]! += 1;
    expect(counts).toEqual([10, 10, 10]);
    for (let index = 0; index < 5; index += 1) expect(balancer.pick(replicas[1])!.id).not.toBe(1);
  });
});

describe('SessionTracker', () => {
  it('pins a keyed session for the window only', () => {
    const tracker = new SessionTracker(1_000);
    tracker.noteWrite('a', 10_000);
    expect(tracker.mustReadPrimary('a', 10_500)).toBe(true);
    expect(tracker.mustReadPrimary('b', 10_500)).toBe(false);
    expect(tracker.mustReadPrimary('a', 11_000)).toBe(false);
    expect(tracker.mustReadPrimary(undefined, 10_500)).toBe(false);
  });

  it('pins an async-context session, isolated from concurrent ones', async () => {
    const tracker = new SessionTracker(1_000);
    const writer = tracker.run(undefined, async () => {
      tracker.noteWrite(undefined, 5_000);
      await new Promise((resolve) => setImmediate(resolve));
      return tracker.mustReadPrimary(undefined, 5_100);
    });
    const reader = tracker.run(undefined, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      return tracker.mustReadPrimary(undefined, 5_100);
    });
    expect(await Promise.all([writer, reader])).toEqual([true, false]);
  });

  it('more sessions writing within the window than it tracks: none of them loses read-your-writes (it errs to the primary)', () => {
    const tracker = new SessionTracker(1_000);
    // The busiest user wrote first and keeps writing; 10,000 others write once each.
    tracker.noteWrite('busy', 0);
    for (let user = 0; user < 10_000; user += 1) {
      tracker.noteWrite(`user-${user}`, 100);
      if (user % 1_000 === 0) tracker.noteWrite('busy', 100);
    }
    for (const session of ['busy', 'user-0', 'user-4999', 'user-9999']) {
      expect(tracker.mustReadPrimary(session, 500)).toBe(true);
    }
    // Once their windows have passed, nobody is pinned any more.
    tracker.noteWrite('later', 1_200);
    expect(tracker.mustReadPrimary('user-0', 1_200)).toBe(false);
    expect(tracker.mustReadPrimary('busy', 1_200)).toBe(false);
    expect(tracker.mustReadPrimary('later', 1_200)).toBe(true);
  });

  it('a zero window turns read-your-writes off', () => {
    const tracker = new SessionTracker(0);
    tracker.noteWrite('a', 1);
    expect(tracker.mustReadPrimary('a', 1)).toBe(false);
  });
});

describe('StatementCache', () => {
  it('property: never holds more than max names, evicts least recently used, never reuses a name', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.nat(9), { maxLength: 80 }), (max, uses) => {
        const evicted: string[] = [];
        const cache = new StatementCache(max, (name) => evicted.push(name));
        const seen = new Map<string, string>();
        const issued = new Set<string>();
        for (const use of uses) {
          const sql = `SELECT ${use}`;
          const name = cache.nameFor(sql);
          if (!issued.has(name)) {
            issued.add(name);
            expect(evicted).not.toContain(name);
          }
          seen.set(sql, name);
          expect(cache.size).toBeLessThanOrEqual(max);
        }
        expect(new Set(evicted).size).toBe(evicted.length);
      }),
    );
  });
});
