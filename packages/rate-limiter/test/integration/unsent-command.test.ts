import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import type { Cluster } from 'ioredis';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCommands, neverSent } from '../../src/stores/unsent-command.js';

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')} (unsent-command)`);

describe.skipIf(!redisUp)('ClusterCommands on a real ioredis connection', () => {
  let client: Redis | undefined;
  afterEach(() => client?.disconnect());

  it('marks only the unwritten one of two commands a closing connection fails together', async () => {
    // A node connection as a Cluster makes it: offline queue on, no reconnect.
    client = new Redis(serviceUrl('redis'), { retryStrategy: () => null, lazyConnect: true });
    await client.connect();
    // ClusterCommands only calls sendCommand, which a node connection has as a Cluster does.
    const commands = ClusterCommands.of(client as unknown as Cluster)!;
    const key = `{${uniqueName('unsent')}}`;
    const written = commands.send('eval', "return redis.call('INCR', KEYS[1])", [key], []).catch((e) => e);
    // The socket goes before the reply: a command sent now waits in the offline queue, and the
    // close fails both, with one Error instance.
    client.stream.destroy();
    const unwritten = commands.send('eval', "return redis.call('INCR', KEYS[1])", [key], []).catch((e) => e);
    const [writtenError, unwrittenError] = await Promise.all([written, unwritten]);
    expect((writtenError as Error).message).toBe('Connection is closed.');
    expect((unwrittenError as Error).message).toBe('Connection is closed.');
    expect(neverSent(unwrittenError)).toBe(true);
    expect(neverSent(writtenError)).toBe(false);
  });
});
