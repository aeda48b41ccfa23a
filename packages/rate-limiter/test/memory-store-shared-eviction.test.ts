import { ManualClock } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, MemoryStore } from '../src/index.js';

/**
 * At the cap the memory store evicts the least recently used key of the whole store, whichever
 * limiter or role (namespace) wrote it: evicting the inserting namespace's own oldest key first
 * let a small namespace (a login limiter beside a busy API limiter, a role with few users) churn
 * through its own few live keys while idle keys of the others held the store, so its limits were
 * never enforced.
 */
describe('memory store at its cap, shared by several namespaces', () => {
  it('a login limiter beside an API limiter that filled the store still refuses the 4th attempt', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = new MemoryStore({ clock, maxKeys: 10 });
    const api = createRateLimiter({
      name: 'api',
      prefix: 'api',
      limits: [{ limit: 100, windowMs: 3_600_000 }],
      clock,
      store,
    });
    const login = createRateLimiter({
      name: 'login',
      prefix: 'login',
      limits: [{ limit: 3, windowMs: 3_600_000 }],
      clock,
      store,
    });
    for (let client = 0; client < 10; client += 1) api.checkSync(`client-${client}`);
    clock.advance(1);
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 5; attempt += 1) {
      outcomes.push(login.checkSync('victim').outcome);
      clock.advance(1);
      login.checkSync(`someone-${attempt}`);
      clock.advance(1);
    }
    expect(outcomes).toEqual(['allowed', 'allowed', 'allowed', 'limited', 'limited']);
    expect(store.size).toBeLessThanOrEqual(10);
    await api.close();
    await login.close();
  });

  it('a role with few users keeps its keys while the default role holds the rest (several limits, general path)', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = new MemoryStore({ clock, maxKeys: 8 });
    const limiter = createRateLimiter({
      limits: [{ limit: 100, windowMs: 3_600_000 }],
      roles: {
        pro: [
          { name: 'hour', limit: 2, windowMs: 3_600_000 },
          { name: 'second', algorithm: 'token-bucket', limit: 10, windowMs: 1_000 },
        ],
      },
      clock,
      store,
    });
    for (let user = 0; user < 8; user += 1) limiter.checkSync(`free-${user}`);
    clock.advance(1);
    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 4; attempt += 1) {
      outcomes.push(limiter.checkSync({ key: 'pro-1', role: 'pro' }).outcome);
      clock.advance(1);
      limiter.checkSync({ key: `pro-other-${attempt}`, role: 'pro' });
      clock.advance(1);
    }
    expect(outcomes).toEqual(['allowed', 'allowed', 'limited', 'limited']);
    expect(store.size).toBeLessThanOrEqual(8);
    await limiter.close();
  });

  it('evicts the least recently used key of the store, not of the inserting namespace', () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = new MemoryStore({ clock, maxKeys: 3 });
    const policy = [{ name: 'p', algorithm: 'fixed-window' as const, limit: 5, windowMs: 60_000 }];
    store.consumeOne('old', policy, 1, undefined, 'a:');
    clock.advance(2_000);
    store.consumeOne('x', policy, 1, undefined, 'b:');
    clock.advance(2_000);
    store.consumeOne('y', policy, 1, undefined, 'b:');
    clock.advance(2_000);
    // Full: b's new key evicts a's idle one, the store's oldest, not b's own x.
    store.consumeOne('z', policy, 1, undefined, 'b:');
    expect(store.consumeOne('x', policy, 0, undefined, 'b:').decisions[0]!.remaining).toBe(4);
    expect(store.consumeOne('old', policy, 0, undefined, 'a:').decisions[0]!.remaining).toBe(5);
  });

  it('holds exactly the maxKeys least recently used keys of all namespaces (a model of LRU)', () => {
    const policy = [{ name: 'p', algorithm: 'fixed-window' as const, limit: 1_000, windowMs: 3_600_000 }];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.tuple(fc.constantFrom('a:', 'b:', 'c:'), fc.integer({ min: 0, max: 5 })), {
          minLength: 1,
          maxLength: 60,
        }),
        (maxKeys, checks) => {
          const clock = new ManualClock(1_700_000_000_000);
          const store = new MemoryStore({ clock, maxKeys });
          // Least recently used first; a check more than a second after the last moves its key.
          const model: string[] = [];
          for (const [namespace, key] of checks) {
            clock.advance(1_001);
            store.consumeOne(`k${key}`, policy, 1, undefined, namespace);
            const name = `${namespace}k${key}`;
            const at = model.indexOf(name);
            if (at >= 0) model.splice(at, 1);
            else if (model.length === maxKeys) model.shift();
            model.push(name);
          }
          expect(store.size).toBe(model.length);
          for (const name of model) {
            const [namespace, key] = [name.slice(0, 2), name.slice(2)];
            const peek = store.adjust(key, policy, { operation: 'peek' }, undefined, undefined, namespace);
            expect(peek.decisions[0]!.remaining).toBeLessThan(1_000);
          }
        },
      ),
    );
  });
});
