import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge } from '@noa/testkit';
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
    // A fixed window of 10 s on the real clock, aligned to multiples of 10 s: the six requests must
    // all fall in one, so none starts in a window's last 2 s.
    await awayFromWindowEdge(10_000, 2_000);
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

  it('serves a product from the cache after the first load, and reloads after invalidation', async () => {
    const first = await fetch(`${base}/api/products/42`);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const product = await first.json();
    const second = await fetch(`${base}/api/products/42`);
    expect(second.headers.get('x-cache')).toBe('HIT');
    expect(await second.json()).toEqual(product);
    const stats = await (await fetch(`${base}/api/cache/stats`)).json();
    expect(stats).toMatchObject({ hits: { l1: 1, l2: 0 }, misses: 1, hitRate: 0.5, l1: { entries: 1 } });
    const invalidated = await fetch(`${base}/api/products/42/invalidate`, { method: 'POST' });
    expect(invalidated.status).toBe(200);
    expect((await fetch(`${base}/api/products/42`)).headers.get('x-cache')).toBe('MISS');
  });

  it('calls the upstream under its quota: requests over it wait their turn instead of failing', async () => {
    const responses = await Promise.all(
      ['A', 'B', 'C', 'D'].map((symbol) => fetch(`${base}/api/quotes/${symbol}`)),
    );
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200]);
    const bodies = (await Promise.all(responses.map((response) => response.json()))) as {
      waitedMs: number;
    }[];
    // Burst 2: two go at once, the other two wait for tokens (about 0.5 s and 1 s).
    expect(bodies.filter((body) => body.waitedMs >= 300).length).toBeGreaterThanOrEqual(2);
    // The upstream never saw more than its quota: at most 2 + 2 per second in any span.
    const calls = demo.upstream.calls.slice(-4).sort((a, b) => a - b);
    for (let first = 0; first < calls.length; first += 1)
      for (let last = first; last < calls.length; last += 1)
        expect(last - first + 1).toBeLessThanOrEqual(2 + (2 * (calls[last]! - calls[first]! + 50)) / 1_000);
  });

  it('exposes the metrics of every package on /metrics', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('noa_rate_limiter_');
    expect(text).toContain('noa_cache_manager_');
    expect(text).toContain('noa_message_queue_');
    // Each limiter and the cache are told apart by their `name` (the limiter/cache label).
    expect(text).toMatch(/^noa_rate_limiter_fallback_active\{limiter="hello"\} 0$/m);
    expect(text).toMatch(/^noa_rate_limiter_fallback_active\{limiter="upstream"\} 0$/m);
    expect(text).toMatch(/^noa_cache_manager_\w+\{[^}]*cache="products"/m);
  });

  it('enqueues an email job that a worker completes, and rejects a bad payload naming the field', async () => {
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${base}/api/jobs/email`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    const added = await post({ to: 'ada@example.com', subject: 'hi' }, { 'idempotency-key': 'welcome-ada' });
    expect(added.status).toBe(202);
    const { id } = (await added.json()) as { id: string };
    const again = await post({ to: 'ada@example.com', subject: 'hi' }, { 'idempotency-key': 'welcome-ada' });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ id, added: false });

    let job: { state: string; result?: { sentTo: string } } = { state: 'waiting' };
    for (let attempt = 0; attempt < 100 && job.state !== 'completed'; attempt += 1) {
      job = (await (await fetch(`${base}/api/jobs/email/${id}`)).json()) as typeof job;
      if (job.state !== 'completed') await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(job.state).toBe('completed');
    expect(job.result?.sentTo).toBe('ada@example.com');

    const bad = await post({ to: 'not-an-address', subject: 'hi' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ fields: ['to'] });
  });
});
