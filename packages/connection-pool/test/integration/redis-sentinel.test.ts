import { startPrivateSentinelOrSkip, uniqueName } from '@noa/testkit';
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
      // connection goes to the dead address and is refused.
      let promoted = false;
      const killed = sentinel!.killMaster().then(() => {
        promoted = true;
      });
      const failures = new Set<string>();
      await waitFor(async () => {
        const outcome = await write(pool, key);
        if (outcome !== 'OK') failures.add(outcome.split(':')[0]!);
        return promoted && outcome === 'OK';
      }, 30_000);
      await killed;
      expect([...failures]).toEqual([BackendUnavailableError.name]);
      expect(await masterPortSeen(pool)).toBe(await sentinel!.masterPort());
    } finally {
      await pool.close();
    }
  });
});
