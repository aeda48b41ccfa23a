import diagnosticsChannel from 'node:diagnostics_channel';
import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { type CheckChannelMessage, createRateLimiter } from '../src/index.js';
import { FlakyStore } from './flaky-store.js';

// README "Metrics and logging": every result is published on noa:rate-limiter:check with the
// limiter's `name` as `limiter`, so a subscriber with several limiters tells them apart.

const start = 1_700_000_000_000;

/** Runs `body` with a subscriber to the check channel; returns what it received. */
async function published(body: () => Promise<void>): Promise<CheckChannelMessage[]> {
  const messages: CheckChannelMessage[] = [];
  const listener = (message: unknown) => messages.push(message as CheckChannelMessage);
  diagnosticsChannel.subscribe('noa:rate-limiter:check', listener);
  try {
    await body();
  } finally {
    diagnosticsChannel.unsubscribe('noa:rate-limiter:check', listener);
  }
  return messages;
}

describe('noa:rate-limiter:check names the limiter', () => {
  it('two limiters (and an unnamed one) on every path: hot, general, lists, roles, beyond capacity, checkSync', async () => {
    const clock = new ManualClock(start);
    const login = createRateLimiter({ name: 'login', limits: [{ limit: 1, windowMs: 60_000 }], clock });
    const api = createRateLimiter({
      name: 'api',
      limits: [
        { limit: 5, windowMs: 60_000 },
        { limit: 50, windowMs: 3_600_000 },
      ],
      roles: { admin: 'unlimited' },
      deny: ['192.0.2.7'],
      allow: ['10.0.0.0/8'],
      clock,
    });
    const unnamed = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    const messages = await published(async () => {
      await login.check('u'); // the memory store's hot path
      await login.check('u'); // limited
      login.checkSync('v');
      await api.check('u'); // two limits: the general path
      await api.check({ key: 'u', ip: '192.0.2.7' });
      await api.check({ key: 'u', ip: '10.1.2.3' });
      await api.check({ key: 'u', role: 'admin' });
      await api.check('u', 6); // above the 5 a minute: never
      await unnamed.check('u');
    });
    expect(messages.map((message) => `${message.limiter}:${message.key}:${message.outcome}`)).toEqual([
      'login:u:allowed',
      'login:u:limited',
      'login:v:allowed',
      'api:u:allowed',
      'api:u:denied',
      'api:u:allowlisted',
      'api:u:unlimited',
      'api:u:exceeds-capacity',
      'limiter:u:allowed',
    ]);
    await Promise.all([login.close(), api.close(), unnamed.close()]);
  });

  it('a remote store: store, local cache, fallback and fail mode answers carry the name too', async () => {
    const local = new FlakyStore();
    const open = new FlakyStore();
    const viaFallback = createRateLimiter({
      name: 'fallback-one',
      store: local,
      limits: [{ limit: 1, windowMs: 60_000 }],
      breaker: { consecutiveFailures: 100 },
    });
    const viaFailMode = createRateLimiter({
      name: 'open-one',
      store: open,
      failMode: 'open',
      limits: [{ limit: 1, windowMs: 60_000 }],
      breaker: { consecutiveFailures: 100 },
    });
    const messages = await published(async () => {
      await viaFallback.check('a');
      await viaFallback.check('a'); // refused by the store, and remembered
      await viaFallback.check('a'); // refused by the local block cache
      local.down = true;
      open.down = true;
      await viaFallback.check('b');
      await viaFailMode.check('b');
    });
    expect(messages.map((message) => `${message.limiter}:${message.source}:${message.outcome}`)).toEqual([
      'fallback-one:store:allowed',
      'fallback-one:store:limited',
      'fallback-one:local-cache:limited',
      'fallback-one:fallback:allowed',
      'open-one:fail-mode:allowed',
    ]);
    await Promise.all([viaFallback.close(), viaFailMode.close()]);
  });

  it('the message is the result plus `limiter`: the result the caller gets is left as it was', async () => {
    const limiter = createRateLimiter({
      name: 'login',
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    let result: Awaited<ReturnType<typeof limiter.check>> | undefined;
    let beyond: Awaited<ReturnType<typeof limiter.check>> | undefined;
    const [message, beyondMessage] = await published(async () => {
      result = await limiter.check('k');
      beyond = await limiter.check('k', 2);
    });
    expect(message).toEqual({ ...result, limiter: 'login' });
    expect(result).not.toHaveProperty('limiter');
    // As the result's own JSON: a retry time of never is left out, not written as null.
    expect(beyondMessage!.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    expect(JSON.parse(JSON.stringify(beyondMessage))).toEqual({
      ...JSON.parse(JSON.stringify(beyond)),
      limiter: 'login',
    });
    expect(JSON.stringify(beyondMessage)).not.toContain('retryAfterMs');
    await limiter.close();
  });

  it('peek and the other adjustments publish nothing (README "limiter.peek")', async () => {
    const limiter = createRateLimiter({ name: 'api', limits: [{ limit: 3, windowMs: 60_000 }] });
    const messages = await published(async () => {
      await limiter.peek('k');
      await limiter.refund('k');
      await limiter.penalize('k', 1);
      await limiter.block('k', 1_000);
      await limiter.unblock('k');
      await limiter.reset('k');
    });
    expect(messages).toEqual([]);
    await limiter.close();
  });
});
