import { startPrivateSentinelOrSkip, uniqueName, within } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../../src/index.js';
import { createRedisPool } from '../../src/redis.js';
import { waitFor } from './helpers/wait.js';

// `redis` takes ioredis options, Sentinel's included (`{ sentinels, name }`): each pooled
// connection asks the sentinels where the master is when it opens (README "Redis and MongoDB").
const { sentinel, skip } = await startPrivateSentinelOrSkip();
afterAll(async () => {
  await sentinel?.stop();
});

/** The outcome of a SET through `pool`: 'OK', or the error's class name and message. */
async function write(pool: ReturnType<typeof createRedisPool>, key: string): Promise<string> {
  return pool
    .use((client) => client.set(key, 'v'))
    .catch((error: unknown) => `${(error as Error).name}: ${(error as Error).message}`);
}

/** The port of the server a pooled connection is on (asked of the server: ioredis keeps 6379 in its options). */
async function masterPortSeen(pool: ReturnType<typeof createRedisPool>): Promise<number> {
  const [, port] = (await pool.use((client) => client.call('CONFIG', 'GET', 'port'))) as [string, string];
  return Number(port);
}

describe.skipIf(skip !== undefined)('RedisPool through Redis Sentinel', () => {
  it('without failoverDetector, a connection opened before a failover refuses one write (READONLY) and is replaced by one on the new master', async () => {
    const pool = createRedisPool({ redis: { sentinels: sentinel!.sentinels, name: sentinel!.name }, max: 1 });
    const key = uniqueName('cp_sentinel');
    try {
      expect(await write(pool, key)).toBe('OK');
      expect(await masterPortSeen(pool)).toBe(await sentinel!.masterPort());
      const newMaster = await sentinel!.failover();
      // The one connection, opened before: on the demoted master, now a replica.
      expect(await write(pool, key)).toMatch(/^(OK|ReplyError: READONLY)/);
      expect(await write(pool, key)).toBe('OK');
      expect(await masterPortSeen(pool)).toBe(newMaster);
    } finally {
      await pool.close();
    }
  });

  it('with failoverDetector, writes after a failover go to the new master; during a crash they fail fast with BackendUnavailableError until the sentinels promote the replica', async () => {
    const pool = createRedisPool({
      redis: { sentinels: sentinel!.sentinels, name: sentinel!.name, failoverDetector: true },
      max: 2,
    });
    const key = uniqueName('cp_sentinel_detect');
    try {
      expect(await write(pool, key)).toBe('OK');
      const newMaster = await sentinel!.failover();
      for (let round = 0; round < 4; round += 1) expect(await write(pool, key)).toBe('OK');
      expect(await masterPortSeen(pool)).toBe(newMaster);

      // Writes go on while the master is down: until the sentinels name the replica, a new
      // connection goes to the dead address and is refused. The bound is the promotion's
      // (down-after-milliseconds 1 s, then the failover: about 3 s here), not killMaster()'s,
      // which also restarts the killed server as a replica and waits for its full sync: CI once
      // took more than 30 s for the whole, on a loaded machine, while the writes had recovered.
      const oldMaster = await sentinel!.masterPort();
      const killed = sentinel!.killMaster();
      killed.catch(() => {});
      const failures = new Set<string>();
      await waitFor(
        async () => {
          const outcome = await write(pool, key);
          if (outcome !== 'OK') failures.add(outcome.split(':')[0]!);
          return outcome === 'OK' && (await sentinel!.masterPort()) !== oldMaster;
        },
        30_000,
        'a write accepted after the sentinels promoted the replica',
      );
      await within('the killed master back as a replica of the new one', 90_000, killed);
      expect([...failures]).toEqual([BackendUnavailableError.name]);
      expect(await masterPortSeen(pool)).toBe(await sentinel!.masterPort());
    } finally {
      await pool.close();
    }
    // About 5 s idle. Each step is bounded (the failover's and the kill's promotion 30 s, each
    // resync 40 s and the sentinels' view of it 30 s, in testkit): above their sum, so a slow
    // step fails naming itself rather than the test's timeout naming none.
  }, 240_000);
});
