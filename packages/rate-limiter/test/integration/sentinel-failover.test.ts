import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startPrivateSentinelOrSkip } from '@noa/testkit';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { checkScriptSha } from '../../src/stores/lua-script.js';

// A user on a Sentinel-managed Redis (ioredis `new Redis({ sentinels, name })`): checks keep
// running while the sentinels fail the master over on request (SENTINEL FAILOVER) and after it
// crashes (SIGKILL). Every check answers within its deadline; while no master answers, the fail
// mode (`closed`) answers; afterwards the checks go back to the store by themselves, through a
// function and through a script the new master never saw (NOSCRIPT); and a key's count keeps
// what the old master had replicated.

const run = promisify(execFile);
const deadlineMs = 100;
// Never reached: every check the store answers is an admission, so counts can be compared.
const limit = 1_000_000;
// Windows of ~35 years: nothing refills or rolls over mid-test.
const windowMs = 2 ** 40;
const keys = Array.from({ length: 8 }, (_, index) => `user-${index}`);

const { sentinel, skip } = await startPrivateSentinelOrSkip();

/** The check program as a function (the default) and as a script (`EVALSHA`, NOSCRIPT on a new master). */
const setups = [
  { name: 'function', functions: true },
  { name: 'script', functions: false },
] as const;

describe.skipIf(skip !== undefined)('checks during a Redis Sentinel failover', () => {
  let client: Redis;
  const limiters: RateLimiter[] = [];
  // When the client was last ready (epoch ms): on the new master, after a switch.
  let readyAt = 0;

  beforeAll(async () => {
    // As the README says: the recommended options, whose `failoverDetector` makes ioredis leave
    // the old master when the sentinels announce the new one (without it, it stays there until
    // the sentinels demote the old master, about 10 s later, and what it counts meanwhile is lost).
    client = sentinel!.client({ ...recommendedRedisOptions });
    client.on('ready', () => {
      readyAt = Date.now();
    });
    await new Promise((resolve) => client.once('ready', resolve));
    for (const { name, functions } of setups)
      limiters.push(
        createRateLimiter({
          store: new RedisStore({ client, prefix: `sentinel-${name}:`, functions }),
          limits: [{ algorithm: 'fixed-window', limit, windowMs }],
          failMode: 'closed',
          deadlineMs,
        }),
      );
  });

  afterAll(async () => {
    for (const limiter of limiters) await limiter.close();
    client?.disconnect();
    await sentinel?.stop();
  });

  /**
   * Checks every key on every limiter each 20 ms until `stop()`; records per limiter and key the
   * store's admissions, every answer that was not the store's, and the slowest answer.
   */
  function traffic() {
    const admitted = limiters.map(() => new Map<string, number>(keys.map((key) => [key, 0])));
    // When each store admission came (epoch ms), per limiter and key.
    const admittedAt = limiters.map(() => new Map<string, number[]>(keys.map((key) => [key, []])));
    const notStore: string[] = [];
    const lastStore = limiters.map(() => 0);
    // When the first and the last answer not from the store came (epoch ms).
    const outage = { first: 0, last: 0 };
    let slowestMs = 0;
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        await Promise.all(
          limiters.flatMap((limiter, index) =>
            keys.map(async (key) => {
              const started = performance.now();
              const result = await limiter.check(key);
              slowestMs = Math.max(slowestMs, performance.now() - started);
              if (result.source === 'store') {
                lastStore[index] = Date.now();
                if (result.allowed) {
                  admitted[index]!.set(key, admitted[index]!.get(key)! + 1);
                  admittedAt[index]!.get(key)!.push(Date.now());
                }
              } else {
                notStore.push(`${setups[index]!.name} ${key}: ${result.source} ${result.outcome}`);
                outage.first ||= Date.now();
                outage.last = Date.now();
              }
            }),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    loop.catch(() => undefined);
    return {
      admitted,
      admittedAt,
      notStore,
      lastStore,
      outage,
      slowestMs: () => slowestMs,
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  /** The count the store holds for each key of each limiter (a peek: `limit - remaining`). */
  async function counts(): Promise<Map<string, number>[]> {
    return Promise.all(
      limiters.map(async (limiter) => {
        const held = new Map<string, number>();
        for (const key of keys) {
          // A peek past its deadline (the first one loads the library; a loaded machine) rejects.
          let remaining: number | undefined;
          for (let attempt = 0; remaining === undefined && attempt < 20; attempt += 1)
            remaining = await limiter.peek(key).then(
              (result) => result.remaining,
              () => undefined,
            );
          expect(remaining, `peek ${key}`).toBeDefined();
          held.set(key, limit - remaining!);
        }
        return held;
      }),
    );
  }

  /**
   * Resolves once every limiter has had store answers for 300 ms after the last answer that was
   * not the store's (and after `since`, epoch ms); says when the fail mode answered, from `since`.
   */
  async function backToStore(flow: ReturnType<typeof traffic>, since: number): Promise<string> {
    const deadline = Date.now() + 30_000;
    const settled = () => {
      const outageEnd = Math.max(since, flow.outage.last);
      return flow.lastStore.every((at) => at > outageEnd) && Date.now() - outageEnd > 300;
    };
    while (!settled()) {
      if (Date.now() > deadline) throw new Error(`checks not back to the store 30 s after ${since}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { first, last } = flow.outage;
    return first === 0
      ? 'no answer by the fail mode'
      : `fail mode from ${first - since} to ${last - since} ms (${flow.notStore.length} answers)`;
  }

  /** Store admissions the store's counts lack, over all keys of all limiters. */
  function lost(
    flow: ReturnType<typeof traffic>,
    before: Map<string, number>[],
    after: Map<string, number>[],
  ) {
    let total = 0;
    for (let index = 0; index < limiters.length; index += 1)
      for (const key of keys)
        total += flow.admitted[index]!.get(key)! - (after[index]!.get(key)! - before[index]!.get(key)!);
    return total;
  }

  it('answers every check within its deadline through a SENTINEL FAILOVER, and then from the new master', async () => {
    const before = await counts();
    const flow = traffic();
    let failedOverAt = 0;
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const replicated = await counts();
      failedOverAt = Date.now();
      await sentinel!.failover();
      const recoveryMs = await backToStore(flow, failedOverAt);
      const switchedAfterMs = readyAt - failedOverAt;
      console.log(
        `SENTINEL FAILOVER: client ready on the new master ${switchedAfterMs} ms, ${recoveryMs} after it was asked`,
      );
      // failoverDetector: the client leaves the old master when the sentinels announce the new one.
      expect(switchedAfterMs).toBeGreaterThan(0);
      expect(switchedAfterMs).toBeLessThan(5_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await flow.stop();
      // Each answer came by its deadline (a generous bound for a loaded machine).
      expect(flow.slowestMs()).toBeLessThan(deadlineMs + 1_000);
      // The fail mode answered whatever the store did not: `closed` refuses.
      for (const answer of flow.notStore) expect(answer).toMatch(/fail-mode limited$/);
      const after = await counts();
      console.log(`SENTINEL FAILOVER: ${lost(flow, before, after)} store admissions not in the counts`);
      for (let index = 0; index < limiters.length; index += 1)
        for (const key of keys) {
          const label = `${setups[index]!.name} ${key}`;
          // What the old master held before the failover was asked survives it (it had replicated).
          expect(after[index]!.get(key)!, label).toBeGreaterThanOrEqual(replicated[index]!.get(key)!);
          // Counted again on the new master: checks went on there.
          expect(after[index]!.get(key)!, label).toBeGreaterThan(replicated[index]!.get(key)!);
          const counted = after[index]!.get(key)! - before[index]!.get(key)!;
          expect(counted, label).toBeLessThanOrEqual(flow.admitted[index]!.get(key)! + 1);
          // The sentinels promote the replica without stopping the old master's writes: what it
          // admitted after the failover was asked, until the client left it, is lost (README).
          // Nothing else is.
          const window = flow.admittedAt[index]!.get(key)!.filter(
            (at) => at >= failedOverAt && at <= readyAt + deadlineMs,
          ).length;
          expect(counted, label).toBeGreaterThanOrEqual(flow.admitted[index]!.get(key)! - window);
        }
    } finally {
      await flow.stop();
    }
  });

  it('answers by the fail mode while a killed master is replaced, then from the promoted replica (NOSCRIPT there)', async () => {
    // The replica holds the function library (FUNCTION LOAD replicates) but no script: EVALSHA
    // meets NOSCRIPT on it once it is master.
    const replicaPort = await replicaOf(sentinel!);
    const master = await sentinel!.masterPort();
    const exists = async (port: number) =>
      (await run('redis-cli', ['-p', String(port), 'script', 'exists', checkScriptSha])).stdout.trim();
    expect(await exists(master)).toBe('1');
    // A replica that never was master has run no script; this one was master before the first
    // test, so its script cache is emptied, as a restart would.
    await run('redis-cli', ['-p', String(replicaPort), 'script', 'flush']);
    expect(await exists(replicaPort)).toBe('0');

    const before = await counts();
    const flow = traffic();
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const killedAt = Date.now();
      const { promotedAfterMs } = await sentinel!.killMaster();
      const recoveryMs = await backToStore(flow, killedAt);
      console.log(
        `master killed: replica promoted after ${promotedAfterMs} ms, client ready ${readyAt - killedAt} ms; ${recoveryMs} after the kill`,
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      await flow.stop();
      expect(flow.slowestMs()).toBeLessThan(deadlineMs + 1_000);
      // The master was gone for about a second: the fail mode answered meanwhile, and refused.
      expect(flow.notStore.length).toBeGreaterThan(0);
      for (const answer of flow.notStore) expect(answer).toMatch(/fail-mode limited$/);
      const after = await counts();
      console.log(`master killed: ${lost(flow, before, after)} store admissions not in the counts`);
      for (let index = 0; index < limiters.length; index += 1)
        for (const key of keys) {
          const label = `${setups[index]!.name} ${key}`;
          const counted = after[index]!.get(key)! - before[index]!.get(key)!;
          // README: what the master counted in its last moments, before its replica received it,
          // is lost with it. Checks are 20 ms apart and replication is sub-millisecond here: at
          // most the check in flight at the kill.
          expect(counted, label).toBeGreaterThanOrEqual(flow.admitted[index]!.get(key)! - 1);
          expect(counted, label).toBeLessThanOrEqual(flow.admitted[index]!.get(key)! + 1);
        }
    } finally {
      await flow.stop();
    }
  });
});

/** The port of the sentinel's replica: the data node that is not the master. */
async function replicaOf(s: NonNullable<typeof sentinel>): Promise<number> {
  const master = await s.masterPort();
  const { stdout } = await run('redis-cli', ['-p', String(master), 'info', 'replication']);
  const port = /slave0:ip=[^,]+,port=(\d+)/.exec(stdout)?.[1];
  if (port === undefined) throw new Error(`master ${master} has no replica: ${stdout}`);
  return Number(port);
}
