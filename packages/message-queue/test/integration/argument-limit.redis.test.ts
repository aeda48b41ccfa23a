import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ArgumentLimit } from '../../src/providers/settle-batches.js';

// The limit on one argument is read from the server (CONFIG GET proto-max-bulk-len) on real
// connections, whatever protocol and reply shape the user's client has: ioredis 6 speaks RESP3 and,
// with `replyMapping: 'resp3'`, answers CONFIG GET with an object instead of a flat array; its error
// replies are `SimpleError`s (subclasses of `ReplyError`), not `ReplyError`s. A private server:
// its limit (1 MiB, Redis's floor) and its ACL user are its own.
const privateRedis = await startPrivateRedisOrSkip(['--proto-max-bulk-len', '1mb']);
const mib = 1024 * 1024;
/** Long enough to need the server's limit (no shortcut under 1 MiB / 3). */
const length = mib;

describe.skipIf(privateRedis.skip !== undefined)('ArgumentLimit on a real server', () => {
  const connections: Redis[] = [];
  const connect = (options: RedisOptions = {}) => {
    const connection = new Redis(privateRedis.redis!.url, { maxRetriesPerRequest: null, ...options });
    connections.push(connection);
    return connection;
  };
  afterAll(async () => {
    for (const connection of connections) connection.disconnect();
    await privateRedis.redis?.stop();
  });

  it("reads the server's proto-max-bulk-len with the client's defaults", async () => {
    expect(await new ArgumentLimit(connect(), undefined).for(length)).toBe(mib);
  });

  it('reads it from a RESP3 client whose replies are maps (ioredis 6 replyMapping: resp3)', async () => {
    // ioredis 5 ignores both options (RESP2, flat arrays): the same answer is expected.
    const resp3 = { protocol: 3, replyMapping: 'resp3' } as RedisOptions;
    expect(await new ArgumentLimit(connect(resp3), undefined).for(length)).toBe(mib);
  });

  it("assumes Redis's default (512 MiB) where the user may not run CONFIG", async () => {
    const admin = connect();
    await admin.call('ACL', 'SETUSER', 'no-config', 'on', '>secret', '~*', '&*', '+@all', '-config');
    const user = connect({ username: 'no-config', password: 'secret' });
    await expect(user.config('GET', 'proto-max-bulk-len')).rejects.toThrow(/NOPERM/);
    expect(await new ArgumentLimit(user, undefined).for(length)).toBe(512 * mib);
  });
});
