import net from 'node:net';
import {
  isReachable,
  recordingLogger,
  serviceUrl,
  sparePort,
  startPrivateRedisOrSkip,
  uniqueName,
} from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerUnavailableError, Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// Start and stop of a RabbitMQ provider whose dependencies are down: close() must be bounded
// when the state store's Redis is gone or frozen, and ready() must report a broker that is not
// there instead of retrying silently.
const url = serviceUrl('rabbitmq');
const rabbitUp = await isReachable('rabbitmq');
if (!rabbitUp) console.log(`skipped: no RabbitMQ at ${url}`);
const privateRedis = await startPrivateRedisOrSkip();

const broker = new URL(url);
const managementUrl = `http://${broker.hostname}:15672/api`;
const managementAuth = `Basic ${Buffer.from(`${decodeURIComponent(broker.username || 'guest')}:${decodeURIComponent(broker.password || 'guest')}`).toString('base64')}`;
const managementUp =
  rabbitUp &&
  (await fetch(`${managementUrl}/overview`, { headers: { authorization: managementAuth } }).then(
    (response) => response.ok,
    () => false,
  ));
if (rabbitUp && !managementUp)
  console.log(`skipped (leak check): no RabbitMQ management API at ${managementUrl}`);

/** How many connections the broker lists under this client-given name. */
async function brokerConnections(connectionName: string): Promise<number> {
  const response = await fetch(`${managementUrl}/connections`, {
    headers: { authorization: managementAuth },
  });
  const connections = (await response.json()) as { client_properties?: { connection_name?: string } }[];
  return connections.filter((connection) => connection.client_properties?.connection_name === connectionName)
    .length;
}

/**
 * A TCP relay to the shared broker on a spare port (not listening until `listen()`), so a test
 * controls when a real broker becomes reachable: `held` connections wait for `release()`, and
 * `freeze()` stops forwarding both ways while the sockets stay open (a frozen broker).
 */
async function brokerRelay(options: { hold?: boolean } = {}) {
  const port = await sparePort();
  const relayedUrl = new URL(url);
  relayedUrl.hostname = '127.0.0.1';
  relayedUrl.port = String(port);
  const waiting: (() => void)[] = [];
  let held = options.hold ?? false;
  let accepted = 0;
  let clientsClosed = 0;
  const pairs: { client: net.Socket; upstream: net.Socket }[] = [];
  const server = net.createServer((client) => {
    accepted += 1;
    client.on('error', () => {});
    client.on('close', () => {
      clientsClosed += 1;
    });
    const forward = () => {
      const upstream = net.connect(Number(broker.port || 5672), broker.hostname);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
      pairs.push({ client, upstream });
    };
    if (held) {
      client.pause();
      waiting.push(forward);
    } else forward();
  });
  return {
    url: relayedUrl.toString(),
    host: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    /** Client sockets closed (by the provider: the relay never closes one on its own). */
    get clientsClosed() {
      return clientsClosed;
    },
    listen: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    release: () => {
      held = false;
      for (const forward of waiting.splice(0)) forward();
    },
    freeze: () => {
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        // Keep reading and dropping: the client's FIN or RST is then still seen.
        client.on('data', () => {});
        client.resume();
      }
    },
    close: () => {
      server.close();
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
    },
  };
}

/** Whether `work` settles within `ms` (a generous bound: the bug this guards against is "never"). */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([work.then(() => true as const), late]);
  clearTimeout(timer);
  return result;
}

describe.skipIf(!rabbitUp || privateRedis.skip !== undefined)(
  'RabbitMqProvider.close() with its Redis down',
  () => {
    const redis = privateRedis.redis!;
    const clients: Redis[] = [];
    const connect = () => {
      const client = new Redis(redis.url, { maxRetriesPerRequest: null });
      client.on('error', () => {});
      clients.push(client);
      return client;
    };
    let killed = false;
    /** Each test starts with the private Redis up (restarted after a test that killed it). */
    const up = async () => {
      if (killed) await redis.restart();
      killed = false;
    };
    const kill = async () => {
      killed = true;
      await redis.kill();
    };
    afterAll(async () => {
      for (const client of clients) client.disconnect();
      redis.resume();
      await redis.stop();
    });

    it('resolves when Redis was killed, even with a subscription waiting on it', async () => {
      await up();
      const provider = new RabbitMqProvider({
        url,
        state: new RedisJobStateStore({ connection: connect(), prefix: uniqueName('close-killed') }),
      });
      await provider.ready();
      await kill();
      // A worker starting now subscribes to cancellations: the SUBSCRIBE waits for Redis.
      const subscribing = expect(
        provider.onCancel(uniqueName('close-killed-q'), () => {}),
      ).rejects.toMatchObject({
        code: 'NOA_CLOSED',
      });
      expect(await settlesWithin(provider.close(), 10_000)).toBe(true);
      // Closing also ends the wait of the subscription (a worker would otherwise wait on it for ever).
      await subscribing;
    });

    it('worker.close() then provider.close() resolve when Redis is gone before the worker starts', async () => {
      await up();
      const provider = new RabbitMqProvider({
        url,
        state: new RedisJobStateStore({ connection: connect(), prefix: uniqueName('close-worker') }),
      });
      const queue = new Queue<number>({ name: uniqueName('close-worker-q'), provider });
      await kill();
      // The backend's share of close() (default 5 s) bounded at 300 ms: the point is that it resolves.
      const worker = new Worker({
        queue,
        concurrency: 2,
        pollIntervalMs: 50,
        backendCloseTimeoutMs: 300,
        handler: async () => {},
      });
      // Let it start: its cancellation SUBSCRIBE and first exchange now wait on the dead Redis.
      await sleep(200);
      expect(await settlesWithin(worker.close(500), 10_000)).toBe(true);
      expect(await settlesWithin(provider.close(), 10_000)).toBe(true);
    });

    it('gives up on a frozen Redis after closeTimeoutMs, warns, and resolves', async () => {
      await up();
      const logger = recordingLogger();
      const provider = new RabbitMqProvider({
        url,
        logger,
        closeTimeoutMs: 500,
        // Longer than the provider's bound, so the provider's own deadline is what ends close().
        state: new RedisJobStateStore({
          connection: connect(),
          prefix: uniqueName('close-frozen'),
          closeTimeoutMs: 60_000,
        }),
      });
      await provider.onCancel(uniqueName('close-frozen-q'), () => {});
      redis.freeze();
      try {
        expect(await settlesWithin(provider.close(), 10_000)).toBe(true);
        expect(logger.messages('warn')).toContain(
          'RabbitMQ provider close timed out; abandoned what had not closed',
        );
      } finally {
        redis.resume();
      }
    });

    it("the store's own closeTimeoutMs drops a frozen Redis's pub/sub connection", async () => {
      await up();
      const store = new RedisJobStateStore({
        connection: connect(),
        prefix: uniqueName('store-frozen'),
        closeTimeoutMs: 300,
      });
      await store.subscribe(uniqueName('store-frozen-q'), () => {});
      redis.freeze();
      try {
        expect(await settlesWithin(store.close(), 10_000)).toBe(true);
      } finally {
        redis.resume();
      }
    });
  },
);

// Side by side: each case has its own provider and relay (the Redis-down cases above share one
// private Redis that they kill and restart, so they run one at a time).
describe.skipIf(!rabbitUp).concurrent('RabbitMqProvider.ready()', () => {
  it('resolves once the broker answers', async () => {
    const provider = new RabbitMqProvider({ url });
    try {
      await provider.ready();
    } finally {
      await provider.close();
    }
  });

  it('rejects with BrokerUnavailableError naming the host, then connects in the background once the broker is reachable', async () => {
    // A real broker behind a relay that is not listening yet: a wrong or down AMQP_URL.
    const relay = await brokerRelay();
    const provider = new RabbitMqProvider({
      url: relay.url,
      readyTimeoutMs: 1_000,
      reconnectDelayMs: 50,
      maxReconnectDelayMs: 200,
    });
    try {
      const error = await provider.ready().then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(BrokerUnavailableError);
      expect(error).toMatchObject({ code: 'NOA_MQ_BROKER_UNAVAILABLE', details: { host: relay.host } });
      expect((error as Error).message).toContain(relay.host);
      expect((error as Error).message).toContain('ECONNREFUSED');
      expect((error as Error).message).not.toContain(decodeURIComponent(broker.password || 'guest'));

      await relay.listen();
      // Nothing calls the provider meanwhile: the reconnect loop that ready() started keeps going.
      await waitFor(() => relay.accepted > 0, 10_000, 'the provider to reconnect on its own');
      const name = uniqueName('ready-q');
      const queue = new Queue<string>({ name, provider });
      await queue.add('hello', 'world');
      expect((await provider.counts(name)).waiting).toBe(1);
      await provider.ready();
      await provider.deleteQueue(name);
    } finally {
      await provider.close();
      relay.close();
    }
  });

  it.skipIf(!managementUp)(
    'close() during the connection handshake leaves no connection open at the broker',
    async () => {
      const relay = await brokerRelay({ hold: true });
      await relay.listen();
      const connectionName = uniqueName('close-while-connecting');
      const provider = new RabbitMqProvider({ url: relay.url, connectionName });
      const connecting = provider.ready().catch((error: unknown) => error);
      try {
        await waitFor(() => relay.accepted > 0, 10_000, 'the provider to open its socket');
        await provider.close();
        // The handshake completes after close(): the connection it opens must be closed at once.
        relay.release();
        expect(await connecting).toMatchObject({ code: 'NOA_CLOSED' });
        for (let check = 0; check < 20; check += 1) {
          await sleep(100);
          expect(await brokerConnections(connectionName)).toBe(0);
        }
      } finally {
        relay.close();
      }
    },
  );

  it('close() on a frozen broker gives up after closeTimeoutMs, warns, and drops the socket', async () => {
    const relay = await brokerRelay();
    await relay.listen();
    const logger = recordingLogger();
    const provider = new RabbitMqProvider({ url: relay.url, logger, closeTimeoutMs: 500 });
    try {
      await provider.ready();
      relay.freeze();
      expect(await settlesWithin(provider.close(), 10_000)).toBe(true);
      expect(logger.messages('warn')).toContain(
        'RabbitMQ provider close timed out; abandoned what had not closed',
      );
      // Without this its socket and heartbeat timers would hold the process until the heartbeat
      // gave up on the broker (a minute or more).
      await waitFor(() => relay.clientsClosed === relay.accepted, 5_000, 'the provider to drop its socket');
    } finally {
      relay.close();
    }
  });

  it('rejects with ClosedError after close()', async () => {
    const provider = new RabbitMqProvider({ url });
    await provider.close();
    await expect(provider.ready()).rejects.toMatchObject({ code: 'NOA_CLOSED' });
  });
});
