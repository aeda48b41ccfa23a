import { inspect } from 'node:util';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMongoPool } from '../src/mongo.js';
import { createMysqlPool } from '../src/mysql.js';
import { createPgPool } from '../src/pg.js';
import { maskUrlPassword } from '../src/redact.js';
import { createRedisPool } from '../src/redis.js';

const secrets = ['pw-in-url-1', 'pw-in-config-2', 'pw-in-replica-3'];

function expectNoSecret(text: string): void {
  for (const secret of secrets) expect(text).not.toContain(secret);
}

describe('a pool printed or serialized shows no password', () => {
  it('PgPool: JSON.stringify and util.inspect mask URL passwords and password fields', async () => {
    const pool = createPgPool({
      name: 'orders',
      primary: `postgres://app:${secrets[0]}@db.example:5432/orders`,
      replicas: [
        { host: 'r1.example', user: 'app', password: secrets[1] },
        `postgres://app:${secrets[2]}@r2/orders`,
      ],
      registry: new Registry(),
    });
    try {
      const json = JSON.stringify(pool);
      expectNoSecret(json);
      // Still useful: where the pool points and its settings.
      expect(json).toContain('db.example:5432/orders');
      expect(json).toContain('"name":"orders"');
      expectNoSecret(inspect(pool, { depth: 10 }));
      // The options keep working for code that reads them.
      expect(pool.options.primary).toContain(secrets[0]);
    } finally {
      await pool.close();
    }
  });

  it('RedisPool: serializable with a registry (no cycle), no password', async () => {
    const pool = createRedisPool({ redis: `redis://:${secrets[0]}@cache:6379/0`, registry: new Registry() });
    try {
      expectNoSecret(JSON.stringify(pool));
      expect(JSON.stringify(pool)).toContain('"registry":"[Registry]"');
      // Where Redis is, shown with the password masked (not left out).
      expect(JSON.stringify(pool)).toContain('"redis":"redis://:***@cache:6379/0"');
      expectNoSecret(inspect(pool, { depth: 10 }));
    } finally {
      await pool.close();
    }
  });

  it('RedisPool with Sentinel options: the data and the sentinel passwords, and a TLS key', async () => {
    const pool = createRedisPool({
      redis: {
        sentinels: [{ host: 's1', port: 26379 }],
        name: 'master',
        password: secrets[0],
        sentinelPassword: secrets[1],
        tls: { key: secrets[2] },
      },
    });
    try {
      expectNoSecret(JSON.stringify(pool));
      expectNoSecret(inspect(pool, { depth: 10 }));
      const shown = JSON.parse(JSON.stringify(pool)) as { options: { redis: Record<string, unknown> } };
      expect(shown.options.redis).toMatchObject({
        sentinels: [{ host: 's1', port: 26379 }],
        name: 'master',
        password: '***',
        sentinelPassword: '***',
        tls: { key: '***' },
      });
    } finally {
      await pool.close();
    }
  });

  it('MysqlPool and MongoPool too', async () => {
    const mysql = createMysqlPool({
      primary: { uri: `mysql://app:${secrets[0]}@db/app`, password: secrets[1] },
    });
    const mongo = createMongoPool({
      url: `mongodb://app:${secrets[0]}@a:27017,b:27017/app`,
      driverOptions: { auth: { username: 'app', password: secrets[1] } },
    });
    try {
      for (const pool of [mysql, mongo]) {
        expectNoSecret(JSON.stringify(pool));
        expectNoSecret(inspect(pool, { depth: 10 }));
      }
    } finally {
      await mysql.close();
      await mongo.close();
    }
  });

  it('a password with a raw @ (pg and WHATWG URLs split at the last @) is masked whole, in options and error text', async () => {
    const password = 'sec@ret-4@x';
    const pool = createPgPool({
      primary: `postgres://app:${password}@db.example:5432/orders`,
      replicas: [`postgres://app:${password}@r1.example/orders?sslmode=disable`],
    });
    try {
      const json = JSON.stringify(pool);
      for (const piece of ['sec', 'ret-4', '@x']) expect(json).not.toContain(piece);
      expect(json).toContain('postgres://app:***@db.example:5432/orders');
      expect(json).toContain('postgres://app:***@r1.example/orders?sslmode=disable');
      expect(
        maskUrlPassword(`connect to postgres://app:${password}@db/orders failed; mail ops@example.com`),
      ).toBe('connect to postgres://app:***@db/orders failed; mail ops@example.com');
      // A user name with a raw @ (Azure's `user@server`); a URL with no password is left alone.
      expect(maskUrlPassword('postgres://app@server:pw-5@db/orders')).toBe(
        'postgres://app@server:***@db/orders',
      );
      expect(maskUrlPassword('postgres://app@db:5432/orders and redis://h:6379/0')).toBe(
        'postgres://app@db:5432/orders and redis://h:6379/0',
      );
    } finally {
      await pool.close();
    }
  });
});
