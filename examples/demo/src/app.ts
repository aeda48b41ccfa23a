import { createRateLimiter, expressRateLimit, type RateLimiter } from '@noa/rate-limiter';
import express, { type Express } from 'express';

/** What the demo app is made of, so tests (and later routes) can reach its parts. */
export interface DemoApp {
  app: Express;
  limiter: RateLimiter;
  close(): Promise<void>;
}

const page = (port: string) => `<!doctype html>
<title>Noa demo</title>
<h1>Noa demo</h1>
<h2>Rate limiting (@noa/rate-limiter)</h2>
<p><code>GET /api/hello</code> allows 5 requests per 10 seconds per client IP (fixed window, memory store).
The 6th gets <code>429 Too Many Requests</code> with <code>Retry-After</code> and an
<code>application/problem+json</code> body. Every answer carries the IETF
<code>RateLimit-Policy</code> and <code>RateLimit</code> headers.</p>
<pre>for i in 1 2 3 4 5 6; do curl -si http://localhost:${port}/api/hello | grep -iE '^(HTTP|ratelimit|retry-after)'; done</pre>
`;

/** Builds the demo Express app on in-memory stores (no services needed). */
export function createApp(): DemoApp {
  const app = express();
  // Behind a proxy set this to its address so req.ip (the rate-limit key) is the real client.
  app.set('trust proxy', 'loopback');
  const limiter = createRateLimiter({
    limits: [{ name: 'hello', algorithm: 'fixed-window', limit: 5, windowMs: 10_000 }],
  });
  app.get('/', (req, res) => {
    res.type('html').send(page(String(req.socket.localPort ?? 3000)));
  });
  app.get('/api/hello', expressRateLimit({ limiter }), (req, res) => {
    res.json({
      hello: 'world',
      remaining: (req as { rateLimit?: { remaining: number } }).rateLimit?.remaining,
    });
  });
  return { app, limiter, close: () => limiter.close() };
}
