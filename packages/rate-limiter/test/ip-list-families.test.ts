import type { AddressInfo } from 'node:net';
import { ConfigError } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RateLimiter } from '../src/index.js';

// The lists take IPv4 and IPv6 entries, and an IPv4 client is an IPv4 client however its socket
// reports it (a dual-stack server sees `::ffff:127.0.0.1`). node:net's BlockList also matches an
// IPv4 address against any IPv6 range that contains its mapped form (`::ffff:0:0/96`), so
// `allow: ['::/0']`, written for "every IPv6 client", exempted every IPv4 client from limiting too,
// and `deny: ['::/0']` refused them all. A mapped range (`::ffff:127.0.0.0/104`) still names IPv4.

interface Served {
  /** Status of a GET / from the IPv4 loopback and from the IPv6 one. */
  statusFrom: (family: 4 | 6) => Promise<number>;
  close: () => Promise<void>;
}

/** A dual-stack server (`::`), as most are: IPv4 clients arrive as `::ffff:127.0.0.1`. */
async function serveExpress(limiter: RateLimiter): Promise<Served> {
  const app = express();
  app.get('/', expressRateLimit({ limiter }), (_req, res) => {
    res.send('ok');
  });
  const server = app.listen(0, '::');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    statusFrom: async (family) => {
      const response = await fetch(family === 4 ? `http://127.0.0.1:${port}/` : `http://[::1]:${port}/`);
      await response.arrayBuffer();
      return response.status;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function serveFastify(limiter: RateLimiter): Promise<Served> {
  const app = Fastify();
  await app.register(fastifyRateLimit, { limiter });
  app.get('/', async () => 'ok');
  await app.listen({ port: 0, host: '::' });
  const { port } = app.server.address() as AddressInfo;
  return {
    statusFrom: async (family) => {
      const response = await fetch(family === 4 ? `http://127.0.0.1:${port}/` : `http://[::1]:${port}/`);
      await response.arrayBuffer();
      return response.status;
    },
    close: () => app.close(),
  };
}

describe.each([
  { framework: 'Express', serve: serveExpress },
  { framework: 'Fastify', serve: serveFastify },
])('$framework allow and deny lists by address family', ({ serve }) => {
  const statuses = async (lists: { allow?: string[]; deny?: string[] }, family: 4 | 6, count = 1) => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], ...lists });
    const app = await serve(limiter);
    try {
      const seen: number[] = [];
      for (let index = 0; index < count; index += 1) seen.push(await app.statusFrom(family));
      return seen;
    } finally {
      await app.close();
      await limiter.close();
    }
  };

  it("deny: ['::/0'] refuses IPv6 clients only; IPv4 ones are counted as usual", async () => {
    expect(await statuses({ deny: ['::/0'] }, 6)).toEqual([403]);
    expect(await statuses({ deny: ['::/0'] }, 4, 2)).toEqual([200, 429]);
  });

  it("allow: ['::/0'] exempts IPv6 clients only; IPv4 ones stay limited", async () => {
    expect(await statuses({ allow: ['::/0'] }, 6, 3)).toEqual([200, 200, 200]);
    expect(await statuses({ allow: ['::/0'] }, 4, 2)).toEqual([200, 429]);
  });

  it('an IPv6 range that holds the mapped block (::/8, ::/80) does not reach IPv4 clients either', async () => {
    expect(await statuses({ allow: ['::/8'] }, 4, 2)).toEqual([200, 429]);
    expect(await statuses({ deny: ['::/80'] }, 4)).toEqual([200]);
    expect(await statuses({ deny: ['::/80'] }, 6)).toEqual([403]);
  });

  it('IPv4 entries, /0 to /32, and IPv4-mapped ones from /96 name IPv4 clients (on a dual-stack socket too)', async () => {
    for (const entry of [
      '0.0.0.0/0',
      '127.0.0.0/8',
      '127.0.0.1/32',
      '127.0.0.1',
      '::ffff:127.0.0.0/104',
      '::ffff:0:0/96',
      '::ffff:127.0.0.1',
    ])
      expect({ entry, statuses: await statuses({ deny: [entry] }, 4) }).toEqual({ entry, statuses: [403] });
    expect(await statuses({ deny: ['0.0.0.0/0'] }, 6)).toEqual([200]);
    expect(await statuses({ deny: ['::1/128'] }, 6)).toEqual([403]);
    expect(await statuses({ deny: ['::1/128'] }, 4)).toEqual([200]);
  });
});

describe('an IPv4-mapped range with a prefix below 96', () => {
  it('is a ConfigError naming the entry: ::ffff:10.0.0.0/8 is ::/8, every IPv4 client and more, not 10.0.0.0/8', () => {
    for (const list of ['allow', 'deny'] as const) {
      let caught: unknown;
      try {
        createRateLimiter({
          limits: [{ limit: 1, windowMs: 1_000 }],
          [list]: ['10.0.0.0/8', '::ffff:10.0.0.0/8'],
        });
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).fields).toEqual([`${list}.1`]);
      expect((caught as ConfigError).message).toContain('::ffff:10.0.0.0/104');
    }
  });
});
