import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type PrivatePostgres,
  type PrivateRedis,
  type RabbitVhost,
  skipReason,
  startPrivatePostgres,
  startPrivateRedis,
  uniqueName,
  withRabbitVhost,
} from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type DemoApp } from '../../src/app.js';

// A private redis-server and a private Postgres, which this file kills and restarts (never the
// shared ones); RabbitMQ is the shared broker, in a vhost of this test's own.
let redis: PrivateRedis | undefined;
let postgres: PrivatePostgres | undefined;
let skip = await skipReason('rabbitmq', 'RabbitMQ');
if (skip === undefined) {
  try {
    redis = await startPrivateRedis();
    postgres = await startPrivatePostgres();
  } catch (error) {
    skip = `skipped: could not start a private redis-server and Postgres (${(error as Error).message})`;
  }
}
if (skip) console.log(skip);

interface Readiness {
  status: string;
  ready: boolean;
  components: Record<
    string,
    { status: string; required: boolean; cause?: { code?: string; message: string } }
  >;
}

describe.skipIf(skip !== undefined)('GET /readyz in services mode while Postgres and Redis fail', () => {
  let vhost: RabbitVhost | undefined;
  let demo: DemoApp;
  let server: Server;
  let base = '';

  const readyz = async (): Promise<{ statusCode: number; body: Readiness }> => {
    const response = await fetch(`${base}/readyz`);
    return { statusCode: response.status, body: (await response.json()) as Readiness };
  };
  /** Sends traffic (what tells the limiter and the cache how Redis is) until /readyz says `status`. */
  const untilStatus = async (status: string, timeoutMs = 30_000) => {
    const giveUp = Date.now() + timeoutMs;
    for (;;) {
      const answer = await readyz();
      if (answer.body.status === status) return answer;
      if (Date.now() > giveUp)
        throw new Error(`/readyz stayed ${JSON.stringify(answer.body)}, wanted ${status}`);
      await (await fetch(`${base}/api/hello`)).body?.cancel();
      await (await fetch(`${base}/api/products/1`)).body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  beforeAll(async () => {
    vhost = await withRabbitVhost();
    demo = createApp({
      services: {
        redisUrl: redis!.url,
        databaseUrl: postgres!.url,
        amqpUrl: vhost.url,
        namespace: uniqueName('readyz'),
      },
    });
    await demo.ready();
    server = demo.app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 120_000);

  afterAll(async () => {
    if (server) {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    }
    await demo?.close();
    await vhost?.drop();
    await redis?.stop();
    await postgres?.destroy();
  });

  it('is 200 up, 503 while Postgres is down, 200 degraded while Redis is down, and 200 up again', async () => {
    const up = await untilStatus('up');
    expect(up.statusCode).toBe(200);
    expect(Object.keys(up.body.components).sort()).toEqual(['cache', 'db', 'emails', 'limiter']);
    expect(up.body.components.db).toMatchObject({ status: 'up', required: true });

    await postgres!.kill();
    const down = await untilStatus('down');
    expect(down.statusCode).toBe(503);
    expect(down.body.ready).toBe(false);
    expect(down.body.components.db).toMatchObject({
      status: 'down',
      cause: { code: 'NOA_POOL_BACKEND_UNAVAILABLE' },
    });
    await postgres!.start();
    expect((await untilStatus('up')).statusCode).toBe(200);

    await redis!.kill();
    const degraded = await untilStatus('degraded');
    expect(degraded.statusCode).toBe(200);
    expect(degraded.body.ready).toBe(true);
    expect(degraded.body.components.limiter?.status).toBe('degraded');
    expect(degraded.body.components.db?.status).toBe('up');
    await redis!.restart();
    expect((await untilStatus('up', 60_000)).statusCode).toBe(200);
  }, 180_000);
});
