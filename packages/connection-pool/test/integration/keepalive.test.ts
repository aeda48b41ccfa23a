import { Socket } from 'node:net';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMysqlPool } from '../../src/mysql.js';
import { createPgPool } from '../../src/pg.js';

const pgUrl = serviceUrl('postgres');
const mysqlUrl = serviceUrl('mysql');
const pgUp = await isReachable('postgres');
const mysqlUp = await isReachable('mysql');
if (!pgUp) console.log(`skipped: no Postgres at ${pgUrl}`);
if (!mysqlUp) console.log(`skipped: no MySQL at ${mysqlUrl}`);

/**
 * Records what each socket opened from here on is told by `setKeepAlive` (both drivers call it on
 * their socket's 'connect' when keep-alive is on): the observable effect of the option, without
 * reading the drivers' internals.
 */
function watchKeepAlive(): { calls: [boolean | undefined, number | undefined][] } {
  const calls: [boolean | undefined, number | undefined][] = [];
  const original = Socket.prototype.setKeepAlive;
  vi.spyOn(Socket.prototype, 'setKeepAlive').mockImplementation(function (
    this: Socket,
    enable?: boolean,
    initialDelay?: number,
  ) {
    calls.push([enable, initialDelay]);
    return original.call(this, enable, initialDelay);
  });
  return { calls };
}

afterEach(() => {
  vi.restoreAllMocks();
});

// ether/ueberDB#998: a NAT or proxy drops an idle connection without a word; with no TCP
// keep-alive the pool learns of it only when a query is sent on it (and waits for an answer that
// never comes). pg leaves keep-alive off unless asked; mysql2 turns it on at the OS's first-probe
// delay (2 hours on Linux), longer than such devices keep an idle flow.
describe.skipIf(!pgUp)('PgPool: TCP keep-alive on its connections', () => {
  it('on by default, first probe after 10 s idle', async () => {
    const { calls } = watchKeepAlive();
    const db = createPgPool({ name: uniqueName('keepalive'), primary: pgUrl });
    try {
      await db.query('SELECT 1');
      expect(calls).toEqual([[true, 10_000]]);
    } finally {
      await db.close();
    }
  });

  it('keepAlive: false and keepAliveInitialDelayMillis in the client config are kept', async () => {
    const { calls } = watchKeepAlive();
    const off = createPgPool({
      name: uniqueName('keepalive-off'),
      primary: { connectionString: pgUrl, keepAlive: false },
    });
    const slow = createPgPool({
      name: uniqueName('keepalive-delay'),
      primary: { connectionString: pgUrl, keepAliveInitialDelayMillis: 60_000 },
    });
    try {
      await off.query('SELECT 1');
      expect(calls).toEqual([]);
      await slow.query('SELECT 1');
      expect(calls).toEqual([[true, 60_000]]);
    } finally {
      await Promise.all([off.close(), slow.close()]);
    }
  });
});

describe.skipIf(!mysqlUp)('MysqlPool: TCP keep-alive on its connections', () => {
  it('on (mysql2 default), first probe after 10 s idle', async () => {
    const { calls } = watchKeepAlive();
    const db = createMysqlPool({ name: uniqueName('keepalive'), primary: mysqlUrl });
    try {
      await db.query('SELECT 1');
      expect(calls).toEqual([[true, 10_000]]);
    } finally {
      await db.close();
    }
  });

  it('enableKeepAlive: false and keepAliveInitialDelay (options or URL) are kept', async () => {
    const { calls } = watchKeepAlive();
    const off = createMysqlPool({
      name: uniqueName('keepalive-off'),
      primary: { uri: mysqlUrl, enableKeepAlive: false },
    });
    const slow = createMysqlPool({
      name: uniqueName('keepalive-delay'),
      primary: { uri: mysqlUrl, keepAliveInitialDelay: 60_000 },
    });
    const inUrl = new URL(mysqlUrl);
    inUrl.searchParams.set('keepAliveInitialDelay', '30000');
    const fromUrl = createMysqlPool({ name: uniqueName('keepalive-url'), primary: inUrl.toString() });
    try {
      await off.query('SELECT 1');
      expect(calls).toEqual([]);
      await slow.query('SELECT 1');
      expect(calls).toEqual([[true, 60_000]]);
      await fromUrl.query('SELECT 1');
      expect(calls).toEqual([
        [true, 60_000],
        [true, 30_000],
      ]);
    } finally {
      await Promise.all([off.close(), slow.close(), fromUrl.close()]);
    }
  });
});
