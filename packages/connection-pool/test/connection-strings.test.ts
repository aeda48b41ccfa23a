import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/index.js';
import { createMongoPool } from '../src/mongo.js';
import { createMysqlPool } from '../src/mysql.js';
import { createPgPool } from '../src/pg.js';
import { createRedisPool } from '../src/redis.js';

/** What `create` throws (it must throw a ConfigError). */
function refusal(create: () => unknown): ConfigError {
  try {
    create();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('accepted');
}

const secret = 's3cr3tpw';

describe('connection strings are checked at construction, without connecting', () => {
  it.each([
    ['pg primary', () => createPgPool({ primary: `postgres://u:${secret}@[bad/db` }), 'primary'],
    [
      'pg replica',
      () => createPgPool({ primary: 'postgres://u@h/db', replicas: [`postgresql://u:${secret}@h:99999/db`] }),
      'replicas.0',
    ],
    [
      'pg connectionString in a ClientConfig',
      () => createPgPool({ primary: { connectionString: `postgres://u:${secret}@[bad/db` } }),
      'primary.connectionString',
    ],
    [
      'mysql bad percent-encoding',
      () => createMysqlPool({ primary: `mysql://u:${secret}%zz@h/db` }),
      'primary',
    ],
    ['mysql primary', () => createMysqlPool({ primary: `mysql://u:${secret}@[bad/db` }), 'primary'],
    ['mysql not a URL', () => createMysqlPool({ primary: 'localhost/db' }), 'primary'],
    [
      'mysql uri in ConnectionOptions',
      () => createMysqlPool({ primary: { uri: `mysql://u:${secret}@[bad/db` } }),
      'primary.uri',
    ],
    ['redis', () => createRedisPool({ redis: `redis://u:${secret}@[bad/0` }), 'redis'],
    ['mongodb', () => createMongoPool({ url: `mongodb://u:${secret}@[bad/db` }), 'url'],
    ['mongodb, a bad second host', () => createMongoPool({ url: 'mongodb://a:27017,b:x/db' }), 'url'],
  ])('%s: ConfigError naming the field, password not shown', (_case, create, field) => {
    const error = refusal(create);
    expect(error.fields).toEqual([field]);
    expect(error.message).not.toContain(secret);
    expect(JSON.stringify(error.issues)).not.toContain(secret);
  });

  it.each([
    ['pg URL', () => createPgPool({ primary: 'postgres://u:p%40ss@db.example:5432/app?sslmode=require' })],
    ['pg IPv6', () => createPgPool({ primary: 'postgres://u@[::1]:5432/app' })],
    [
      'pg socket host in the query',
      () => createPgPool({ primary: 'postgres://u:p@/app?host=/var/run/postgresql' }),
    ],
    ['pg socket: form', () => createPgPool({ primary: 'socket:/var/run/postgresql?db=app' })],
    // pg-connection-string escapes a lone `%` (the password is `p%zz`).
    ['pg lone %', () => createPgPool({ primary: 'postgres://u:p%zz@h/db' })],
    ['pg socket path', () => createPgPool({ primary: '/var/run/postgresql app' })],
    ['pg ClientConfig', () => createPgPool({ primary: { host: 'h', password: 'p' } })],
    ['mysql URL', () => createMysqlPool({ primary: 'mysql://u:p@h:3306/app?charset=utf8mb4' })],
    ['mariadb URL', () => createMysqlPool({ primary: 'mariadb://u:p@h/app' })],
    ['mysql ConnectionOptions', () => createMysqlPool({ primary: { host: 'h', user: 'u' } })],
  ])('%s is accepted', async (_case, create) => {
    await create().close();
  });

  it.each([
    ['redis URL', 'redis://:p@h:6379/0'],
    ['rediss URL', 'rediss://u:p@h:6380'],
    ['host:port', 'localhost:6379'],
    ['socket path', '/var/run/redis.sock'],
  ])('redis %s is accepted', async (_case, redis) => {
    await createRedisPool({ redis }).close();
  });

  it.each([
    ['one host', 'mongodb://u:p@h:27017/app'],
    ['a replica set', 'mongodb://a:27017,b:27018,c/app?replicaSet=rs0'],
    ['srv', 'mongodb+srv://u:p@cluster0.example.net/app'],
    ['IPv6', 'mongodb://[::1]:27017/app'],
  ])('mongodb %s is accepted', async (_case, url) => {
    await createMongoPool({ url }).close();
  });
});
