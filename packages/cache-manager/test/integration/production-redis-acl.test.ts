import {
  aclRefusedObjects,
  generousDeadlineMs,
  recordingLogger,
  restrictedAclUsers,
  startPrivateRedisOrSkip,
} from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

// Redis as managed services run it: an application user confined to its own key prefix and
// channels, and (second user) with the "dangerous" commands off (KEYS, CONFIG, FLUSHALL, INFO…).
// Every feature of a cache with that prefix must run without a NOPERM: `ACL LOG` records each
// refusal, swallowed or not. A private server: ACL users must not reach other suites.

const { redis: server, skip } = await startPrivateRedisOrSkip();

const prefix = 'app:cache:';
/** The README's minimal command list (see "Production Redis"). */
const minimalCommands =
  '+get +set +mget +del +unlink +exists +pexpire +getrange +setrange +evalsha +eval +sadd +srem +srandmember +sscan +scan +rpush +lrange +llen +publish +subscribe';
/** The list of earlier releases, without `+srandmember` (tag set pruning's sample). */
const previousCommands = minimalCommands.replace(' +srandmember', '');
/** The README's "Production Redis" ACL lines (the second adds `-@dangerous`, the third grants only what is used). */
const users = restrictedAclUsers(prefix, minimalCommands);

describe.skipIf(skip !== undefined)('the cache on an ACL-restricted Redis user', () => {
  const admin = new Redis(server?.url ?? 'redis://127.0.0.1:1', { lazyConnect: true });
  const clients: Redis[] = [];
  beforeAll(async () => {
    for (const [name, rules] of Object.entries(users)) await admin.call('ACL', 'SETUSER', name, ...rules);
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await server?.stop();
  });

  async function connectAs(username: string): Promise<Redis> {
    const client = new Redis(server!.url, { username, password: 'secret', lazyConnect: true });
    clients.push(client);
    await client.connect();
    return client;
  }

  it.each(Object.keys(users))(
    '%s: every feature runs with keys and channels under the prefix',
    async (username) => {
      await admin.flushall(); // the other user's run left its keys under the same prefix
      await admin.call('ACL', 'LOG', 'RESET');
      const client = await connectAs(username);
      const logger = recordingLogger();
      const options = {
        redis: client,
        prefix,
        onBackendError: 'throw' as const,
        hotKeys: 10,
        logger,
        operationTimeoutMs: generousDeadlineMs,
      };
      const cache = new Cache(options);
      const other = new Cache(options);
      await Promise.all([cache.ready(), other.ready()]);
      try {
        await cache.set('a', { id: 1, name: 'Ada' }, { tags: ['t'] });
        expect(await other.get('a')).toEqual({ id: 1, name: 'Ada' });
        expect(await cache.getOrSet('b', async () => ({ id: 2, name: 'Bob' }), { tags: ['t'] })).toEqual({
          id: 2,
          name: 'Bob',
        });
        expect(await other.getMany(['a', 'b', 'c'])).toEqual([
          { id: 1, name: 'Ada' },
          { id: 2, name: 'Bob' },
          undefined,
        ]);
        expect(
          await cache.getOrSetMany(['c', 'd'], async (keys) => keys.map((key) => ({ id: 3, name: key }))),
        ).toHaveLength(2);
        const evicted = new Promise<void>((resolve) =>
          other.onInvalidation((message) => message.t === 'tag' && resolve()),
        );
        expect(await cache.deleteByTag('t')).toBe(2);
        await evicted;
        expect(await other.get('a')).toBeUndefined();
        await cache.expireByTag('t');
        const tenant = cache.namespace('tenant');
        await tenant.set('x', { id: 9, name: 'X' }, { tags: ['t'] });
        expect(await other.namespace('tenant').get('x')).toEqual({ id: 9, name: 'X' });
        const cleared = new Promise<void>((resolve) =>
          other.onInvalidation((message) => message.t === 'clear' && resolve()),
        );
        await tenant.clear();
        await cleared;
        expect(await other.namespace('tenant').get('x')).toBeUndefined();
        const report = await cache.warm(['w1', 'w2'], (key) => ({ id: 0, name: key }));
        expect(report).toMatchObject({ loaded: 2 });
        await cache.set('sliding', { id: 7, name: 'S' }, { slidingTtlMs: 60_000 });
        expect(await other.get('sliding')).toEqual({ id: 7, name: 'S' }); // slid in Redis (GETRANGE/SETRANGE)
        expect(cache.health().status).toBe('up');
        const rootCleared = new Promise<void>((resolve) =>
          other.onInvalidation((message) => message.t === 'clear' && resolve()),
        );
        await cache.clear();
        await rootCleared;
        expect(await other.get('w1')).toBeUndefined();
        await cache.set('hot', { id: 5, name: 'hot' });
        // Tagged writes prune their tag's set now and then (SRANDMEMBER, then prune-tag.lua's
        // EXISTS and SREM), in the background: 200 writes prune at least once but with a chance
        // of (15/16)^200, about 2.5e-6. Each key is deleted once written, so the prune removes some.
        for (let index = 0; index < 200; index += 1) {
          await cache.set(`p${index}`, index, { tags: ['pruned'] });
          await cache.delete(`p${index}`);
        }
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline && !logger.messages('debug').includes('tag set pruned'))
          await new Promise((resolve) => setTimeout(resolve, 10));
        expect(logger.messages('debug')).toContain('tag set pruned');
      } finally {
        await Promise.all([cache.close(), other.close()]);
      }
      expect(logger.entriesAt('warn', 'error')).toEqual([]);
      // The only refusal allowed is ioredis's ready check (INFO, in @dangerous), which it skips.
      const refused = aclRefusedObjects(await admin.call('ACL', 'LOG'));
      expect(refused.filter((command) => command !== 'info')).toEqual([]);
      const keys = await admin.keys('*');
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.filter((key) => !key.startsWith(prefix))).toEqual([]);
    },
  );

  it('a user with the previous list (no +srandmember): tagged writes still work, pruning stops with one warning', async () => {
    await admin.flushall();
    await admin.call(
      'ACL',
      'SETUSER',
      'previous',
      'on',
      '>secret',
      'resetkeys',
      `~${prefix}*`,
      'resetchannels',
      `&${prefix}*`,
      '-@all',
      ...previousCommands.split(' '),
    );
    const client = await connectAs('previous');
    const logger = recordingLogger();
    const cache = new Cache({ redis: client, prefix, logger, operationTimeoutMs: generousDeadlineMs });
    await cache.ready();
    try {
      for (let index = 0; index < 400; index += 1) {
        await cache.set(`q${index}`, index, { tags: ['refused'] });
        if (index % 2 === 0) await cache.delete(`q${index}`);
      }
      expect(await admin.exists(`${prefix}v:q399`)).toBe(1);
      expect(await cache.deleteByTag('refused')).toBe(200);
    } finally {
      await cache.close();
    }
    const refusals = logger.messages('warn').filter((message) => message.includes('+srandmember'));
    expect(refusals).toHaveLength(1);
  });
});
