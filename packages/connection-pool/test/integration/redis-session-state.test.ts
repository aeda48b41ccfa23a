import { isReachable, serviceUrl, startPrivateRedis, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { createRedisPool } from '../../src/redis.js';

const url = serviceUrl('redis');
const reachable = await isReachable('redis');
if (!reachable) console.log(`skipped: no Redis at ${url}`);

// max: 1, so the next borrower gets the very connection the previous one gave back (if any).
/**
 * Another writer changes `watched` (a key a borrower of `pool` watched and gave back), then the
 * next borrower's MULTI/EXEC on `mine` must run: a WATCH left on the connection would abort it.
 */
async function expectExecAfterOutsideWrite(
  pool: ReturnType<typeof createRedisPool>,
  watched: string,
  mine: string,
): Promise<void> {
  const outsider = createRedisPool({ redis: url, max: 1 });
  await outsider.use((client) => client.set(watched, 'changed'));
  await outsider.close();
  const result = await pool.use((client) => client.multi().set(mine, '1').exec());
  expect(result).toEqual([[null, 'OK']]);
}

describe.skipIf(!reachable)(
  'RedisPool: a connection given back with session state is not lent again as it is',
  () => {
    it('a WATCH left behind (an early return before MULTI) does not abort the next borrower’s MULTI/EXEC', async () => {
      const pool = createRedisPool({ redis: url, max: 1 });
      const watched = uniqueName('cp_watched');
      const mine = uniqueName('cp_mine');
      try {
        await pool.use(async (client) => {
          await client.watch(watched);
          return client.get(watched); // returns without EXEC, DISCARD or UNWATCH
        });
        await expectExecAfterOutsideWrite(pool, watched, mine);
      } finally {
        await pool.use((client) => client.del(watched, mine));
        await pool.close();
      }
    });

    it('the same for a raw acquire()/release()', async () => {
      const pool = createRedisPool({ redis: url, max: 1 });
      const watched = uniqueName('cp_watched');
      const mine = uniqueName('cp_mine');
      try {
        const first = await pool.acquire();
        await first.watch(watched);
        pool.release(first);
        await expectExecAfterOutsideWrite(pool, watched, mine);
      } finally {
        await pool.use((client) => client.del(watched, mine));
        await pool.close();
      }
    });

    it('a MULTI left open does not queue the next borrower’s commands', async () => {
      const pool = createRedisPool({ redis: url, max: 1 });
      const key = uniqueName('cp_multi');
      try {
        await pool.use(async (client) => {
          await client.multi({ pipeline: false });
          await client.set(key, 'queued');
        });
        const value = await pool.use(async (client) => {
          await client.set(key, 'direct');
          return client.get(key);
        });
        expect(value).toBe('direct');
      } finally {
        await pool.use((client) => client.del(key));
        await pool.close();
      }
    });

    it('a SELECT of another database does not make the next borrower read and write there', async () => {
      const pool = createRedisPool({ redis: url, max: 1 });
      const key = uniqueName('cp_db');
      try {
        await pool.use((client) => client.set(key, 'db0'));
        await pool.use(async (client) => {
          await client.select(5);
        });
        expect(await pool.use((client) => client.get(key))).toBe('db0');
      } finally {
        await pool.use((client) => client.del(key));
        await pool.close();
      }
    });

    it('a pool of another database than 0 (its URL’s /3) is switched back to that one, not to 0', async () => {
      const base = new URL(url);
      base.pathname = '/3';
      const pool = createRedisPool({ redis: base.toString(), max: 1 });
      const key = uniqueName('cp_db3');
      try {
        await pool.use((client) => client.set(key, 'db3'));
        await pool.use(async (client) => {
          await client.select(0);
        });
        expect(await pool.use((client) => client.get(key))).toBe('db3');
      } finally {
        await pool.use((client) => client.del(key));
        await pool.close();
      }
    });

    it('a connection left subscribed is not lent for ordinary commands', async () => {
      const pool = createRedisPool({ redis: url, max: 1 });
      const key = uniqueName('cp_sub');
      try {
        await pool.use(async (client) => {
          await client.subscribe(uniqueName('cp_channel'));
        });
        expect(await pool.use((client) => client.set(key, 'v'))).toBe('OK');
      } finally {
        await pool.use((client) => client.del(key));
        await pool.close();
      }
    });

    it('a connection given back with a SUBSCRIBE not yet answered (not awaited) is not lent for ordinary commands', async () => {
      const pool = createRedisPool({ redis: url, max: 1 });
      const key = uniqueName('cp_sub_pending');
      let forgotten: Promise<unknown> | undefined;
      try {
        await pool.use(async (client) => {
          // Sent, never awaited: ioredis enters subscriber mode only when the answer comes.
          forgotten = client.subscribe(uniqueName('cp_channel')).catch((error: unknown) => error);
        });
        expect(await pool.use((client) => client.set(key, 'v'))).toBe('OK');
        expect(await pool.use((client) => client.get(key))).toBe('v');
        await forgotten;
      } finally {
        await pool.use((client) => client.del(key));
        await pool.close();
      }
    });

    it('a connection whose borrower changed who it is (AUTH as another user, RESET) or whether it is answered (CLIENT REPLY) is not lent again', async () => {
      // A private server: the test creates an ACL user.
      const server = await startPrivateRedis();
      const pool = createRedisPool({ redis: server.url, max: 1, queryTimeoutMs: 2_000 });
      try {
        await pool.use((client) =>
          client.call('ACL', 'SETUSER', 'reader', 'on', '>secret', '~*', '+@read', '+@connection'),
        );
        await pool.use(async (client) => {
          await client.call('AUTH', 'reader', 'secret');
        });
        // The next borrower is the pool's user again, not the one its predecessor switched to.
        expect(await pool.use((client) => client.call('ACL', 'WHOAMI'))).toBe('default');
        expect(await pool.use((client) => client.set('k', 'v'))).toBe('OK');

        // RESET puts the connection back to database 0 (and the default user): a pool of database 2
        // must not lend it so.
        const second = createRedisPool({ redis: `${server.url}/2`, max: 1 });
        try {
          await second.use((client) => client.set('in-db-2', 'yes'));
          await second.use(async (client) => {
            await client.call('RESET');
          });
          expect(await second.use((client) => client.get('in-db-2'))).toBe('yes');
        } finally {
          await second.close();
        }
        await pool.use(async (client) => {
          // Not awaited: the server answers neither it nor anything after it.
          void client.call('CLIENT', 'REPLY', 'OFF').catch(() => {});
        });
        // Answered, not left waiting for a reply the server will never send.
        expect(await pool.use((client) => client.get('k'))).toBe('v');
      } finally {
        await pool.close();
        await server.stop();
      }
    });

    it('a connection given back with a blocking command still waiting (not awaited) is not lent to the next borrower', async () => {
      const pool = createRedisPool({ redis: url, max: 1 });
      const queue = uniqueName('cp_queue');
      const key = uniqueName('cp_after');
      let forgotten: Promise<unknown> | undefined;
      try {
        await pool.use(async (client) => {
          forgotten = client.blpop(queue, 0).catch((error: unknown) => error); // never awaited by its borrower
        });
        // Served at once on a connection of its own, not queued behind the BLPOP for ever.
        expect(await pool.use((client) => client.set(key, 'v'))).toBe('OK');
        expect(await forgotten).toBeInstanceOf(Error);
      } finally {
        await pool.use((client) => client.del(key));
        await pool.close();
      }
    });
  },
);
