import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type DemoApp } from '../src/app.js';

describe('GET /readyz in memory mode, over HTTP', () => {
  let demo: DemoApp;
  let server: Server;
  let base = '';
  beforeAll(async () => {
    demo = createApp();
    server = demo.app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.close();
    await demo.close();
  });

  it('is 200 up with each component, not cached', async () => {
    // A worker reads `unknown` (so the optional component `degraded`) until its first exchange
    // with the queue's backend: wait for that, as a readiness probe's retries would.
    let response = await fetch(`${base}/readyz`);
    for (
      let tries = 0;
      tries < 100 && ((await response.clone().json()) as { status: string }).status !== 'up';
      tries += 1
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      response = await fetch(`${base}/readyz`);
    }
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as { checkedAt: string; components: Record<string, unknown> };
    expect(body).toMatchObject({
      status: 'up',
      ready: true,
      components: {
        limiter: { component: 'rate-limiter', status: 'up', required: false, details: { store: 'memory' } },
        cache: { component: 'cache', status: 'up', required: false, details: { l2: 'none' } },
        emails: { component: 'worker:emails', status: 'up', required: false },
      },
    });
    expect(body.components).not.toHaveProperty('db');
    expect(Date.parse(body.checkedAt)).not.toBeNaN();
  });

  it('stays 200 but degraded once an optional component is down (the closed cache)', async () => {
    await demo.cache.close();
    const response = await fetch(`${base}/readyz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: 'degraded',
      ready: true,
      components: { cache: { status: 'down', cause: { name: 'ClosedError', code: 'NOA_CLOSED' } } },
    });
  });
});
