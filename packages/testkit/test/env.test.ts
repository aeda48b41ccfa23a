import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  brokerList,
  ensureService,
  hostPort,
  parseHostPort,
  redactUrl,
  serviceDefaults,
  serviceUrl,
} from '../src/index.js';

describe('serviceUrl', () => {
  const saved = process.env.REDIS_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = saved;
  });

  it('prefers the env var and falls back to the loopback default', () => {
    delete process.env.REDIS_URL;
    expect(serviceUrl('redis')).toBe('redis://127.0.0.1:6379');
    process.env.REDIS_URL = 'redis://10.1.2.3:7000/2';
    expect(serviceUrl('redis')).toBe('redis://10.1.2.3:7000/2');
    expect(hostPort('redis')).toEqual({ host: '10.1.2.3', port: 7000 });
  });

  it('treats an empty env var as unset', () => {
    process.env.REDIS_URL = '';
    expect(serviceUrl('redis')).toBe(serviceDefaults.redis.url);
  });

  it('ensureService trusts a set env var as is, without connecting', async () => {
    process.env.REDIS_URL = 'redis://192.0.2.1:1';
    expect(await ensureService('redis')).toBe('redis://192.0.2.1:1');
  });

  it('has a loopback default and an env var for every service of issue 8', () => {
    const envs = Object.values(serviceDefaults).map((entry) => entry.env);
    for (const env of [
      'REDIS_URL',
      'DATABASE_URL',
      'MYSQL_URL',
      'AMQP_URL',
      'ETCD_URL',
      'KAFKA_BROKERS',
      'MONGO_URL',
      'S3_ENDPOINT',
      'SQS_ENDPOINT',
    ])
      expect(envs).toContain(env);
    for (const { url } of Object.values(serviceDefaults)) {
      const { host, port } = parseHostPort(url);
      expect(['127.0.0.1', 'localhost']).toContain(host);
      expect(port).toBeGreaterThan(0);
    }
  });
});

describe('parseHostPort', () => {
  it.each([
    ['postgres://noa:noa@127.0.0.1:5432/noa', '127.0.0.1', 5432],
    ['postgres://db.internal/noa', 'db.internal', 5432],
    ['mysql://u:p@h/d', 'h', 3306],
    ['amqp://guest:guest@rabbit', 'rabbit', 5672],
    ['mongodb://127.0.0.1/noa', '127.0.0.1', 27017],
    ['nats://n', 'n', 4222],
    ['http://localhost:5000', 'localhost', 5000],
    ['https://s3.example', 's3.example', 443],
    ['127.0.0.1:9092,127.0.0.1:9093', '127.0.0.1', 9092],
    ['kafka-1:19092', 'kafka-1', 19092],
    ['redis://[::1]:6380', '::1', 6380],
  ])('%s → %s:%d', (address, host, port) => {
    expect(parseHostPort(address)).toEqual({ host, port });
  });

  it('reads back any host:port it is given', () => {
    fc.assert(
      fc.property(fc.domain(), fc.integer({ min: 1, max: 65_535 }), (host, port) => {
        expect(parseHostPort(`${host}:${port}`)).toEqual({ host, port });
        expect(parseHostPort(`redis://${host}:${port}/0`)).toEqual({ host, port });
      }),
    );
  });
});

describe('brokerList', () => {
  it('splits, trims and drops schemes and empty entries', () => {
    expect(brokerList('a:1, b:2,,kafka://c:3')).toEqual(['a:1', 'b:2', 'c:3']);
  });
});

describe('redactUrl', () => {
  it('hides the password and keeps the rest', () => {
    expect(redactUrl('postgres://noa:secret@127.0.0.1:5432/noa')).toBe(
      'postgres://noa:***@127.0.0.1:5432/noa',
    );
    expect(redactUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactUrl('127.0.0.1:9092')).toBe('127.0.0.1:9092');
  });
});
