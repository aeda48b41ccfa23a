import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type DemoApp } from '../src/app.js';

describe('demo app over HTTP', () => {
  let demo: DemoApp;
  let server: Server;
  let base = '';
  beforeAll(async () => {
    demo = createApp();
    server = demo.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.close();
    await demo.close();
  });

  it('explains the limit on / with a curl line', async () => {
    const response = await fetch(`${base}/`);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('curl');
    expect(html).toContain('/api/hello');
  });

  it('admits 5 requests per 10 s per IP, then answers 429 with headers', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let index = 0; index < 6; index += 1) {
      last = await fetch(`${base}/api/hello`);
      statuses.push(last.status);
      if (index === 0) {
        expect(last.headers.get('ratelimit-policy')).toBe('"hello";q=5;w=10');
        expect(last.headers.get('ratelimit')).toMatch(/^"hello";r=4;t=\d+$/);
        expect(await last.json()).toMatchObject({ hello: 'world', remaining: 4 });
      }
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(last!.headers.get('content-type')).toContain('application/problem+json');
    // Another client (by X-Forwarded-For from the trusted loopback proxy) has its own quota.
    expect((await fetch(`${base}/api/hello`, { headers: { 'x-forwarded-for': '192.0.2.1' } })).status).toBe(
      200,
    );
  });
});
