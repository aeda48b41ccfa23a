import { startPrivateSentinelOrSkip } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { delay } from '../../src/deadline.js';
import { reviveSentinelClient } from '../../src/sentinel-revival.js';

/**
 * The ioredis race `reviveSentinelClient` guards against, reproduced on a private Sentinel setup:
 * the client drops its connection, and while it asks the sentinels for the master, its connector
 * is disconnected, which is what ioredis's failover detector does on `+switch-master`.
 */
const { sentinel, skip } = await startPrivateSentinelOrSkip({ sentinelCount: 1 });
/** An ioredis client (typed through testkit: core does not depend on ioredis). */
type Redis = ReturnType<NonNullable<typeof sentinel>['client']>;
const clients: Redis[] = [];
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await sentinel?.stop();
});

async function readyClient(failoverDetector = true): Promise<Redis> {
  const client = sentinel!.client({ failoverDetector, retryStrategy: () => 50 });
  clients.push(client);
  await client.ping();
  return client;
}

/** Drops the connection and, as the reconnect starts its sentinel lookup, disconnects the connector. */
function raceTheLookup(client: Redis): void {
  client.once('connecting', () => {
    (client as unknown as { connector: { disconnect(): void } }).connector.disconnect();
  });
  client.disconnect(true);
}

async function statusAfter(client: Redis, ms: number): Promise<string> {
  await delay(ms);
  return client.status;
}

describe.skipIf(skip !== undefined)('reviveSentinelClient (ioredis failover detector race)', () => {
  it('ioredis alone ends the client for good (what the guard is for)', async () => {
    const client = await readyClient();
    raceTheLookup(client);
    expect(await statusAfter(client, 1_500)).toBe('end');
  });

  it('reconnects a client ioredis ended by the race, once', async () => {
    const client = await readyClient();
    let revived = 0;
    const stop = reviveSentinelClient(client, () => {
      revived += 1;
    });
    raceTheLookup(client);
    const started = Date.now();
    while (client.status !== 'ready' || revived === 0) {
      if (Date.now() - started > 10_000) throw new Error(`not ready again: ${client.status}`);
      await delay(20);
    }
    expect(await client.ping()).toBe('PONG');
    expect(revived).toBe(1);
    stop();
  });

  it('leaves a client its user disconnects while it connects, or after it is ready, ended', async () => {
    const during = await readyClient();
    const after = await readyClient();
    let revived = 0;
    const stops = [during, after].map((client) => reviveSentinelClient(client, () => (revived += 1)));
    during.once('connecting', () => during.disconnect());
    during.disconnect(true);
    after.disconnect();
    expect(await statusAfter(during, 1_500)).toBe('end');
    expect(after.status).toBe('end');
    expect(revived).toBe(0);
    for (const stop of stops) stop();
  });

  it('attaches nothing to a client without the failover detector, and detaches when stopped', async () => {
    const plain = await readyClient(false);
    const before = plain.listenerCount('end');
    const stopPlain = reviveSentinelClient(plain, () => {});
    expect(plain.listenerCount('end')).toBe(before);
    stopPlain();

    const client = await readyClient();
    const listening = client.listenerCount('end');
    let revived = 0;
    const stop = reviveSentinelClient(client, () => (revived += 1));
    expect(client.listenerCount('end')).toBe(listening + 1);
    stop();
    expect(client.listenerCount('end')).toBe(listening);
    raceTheLookup(client);
    expect(await statusAfter(client, 1_500)).toBe('end');
    expect(revived).toBe(0);
  });
});
