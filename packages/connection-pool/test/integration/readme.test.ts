import path from 'node:path';
import { isReachable, readmeBlocks, runReadmeBlock, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlPool } from '../../src/mysql.js';
import { type PrivatePgCluster, privatePgSkipReason, startPrivatePgCluster } from './helpers/private-pg.js';

// Every ```ts block preceded by `<!-- test -->` in the README and its guides (docs/*.md, after the
// README in name order) runs here, against a private Postgres primary + replica, a fresh MariaDB
// database, the shared Redis and the shared MongoDB.
const packageDir = path.resolve(import.meta.dirname, '../..');
const blocks = readmeBlocks(packageDir).filter((block) => block.tag === undefined);

// What each block prints, in order, with the file it is in.
const expectedLogs: { file: string; check: (logs: unknown[][]) => void }[] = [
  { file: 'README.md', check: (logs) => expect(logs[0]).toEqual(['ada']) },
  { file: 'README.md', check: (logs) => expect(logs).toEqual([[2], [40]]) },
  { file: 'README.md', check: (logs) => expect(logs).toEqual([[[1, 'a']], [{ n: 2 }]]) },
  { file: 'README.md', check: (logs) => expect(logs[0]).toEqual([true]) },
  { file: 'README.md', check: (logs) => expect(logs[0]).toEqual([true, 'up']) },
  { file: 'README.md', check: (logs) => expect(logs[0]).toEqual([1, true]) },
  {
    file: 'README.md',
    check: (logs) => expect(logs[0]).toEqual([[expect.stringMatching(/^readme:jobs:/), 'job-1']]),
  },
  { file: 'README.md', check: (logs) => expect(logs[0]).toEqual([1, true]) },
  { file: 'README.md', check: (logs) => expect(logs[0]).toEqual(['NOA_CONFIG_INVALID', ['primary']]) },
  {
    file: 'docs/health.md',
    check: (logs) => expect(logs[0]).toEqual([false, 'down', 'NOA_POOL_BACKEND_UNAVAILABLE']),
  },
  {
    file: 'docs/health.md',
    check: (logs) =>
      expect(logs).toEqual([
        ['orders', 'down', { primary: 'down', replicas: 0, replicasInRotation: 0 }],
        ['NOA_POOL_BACKEND_UNAVAILABLE'],
      ]),
  },
];

const pgSkip = privatePgSkipReason();
const mysqlUp = await isReachable('mysql');
const redisUp = await isReachable('redis');
const mongoUp = await isReachable('mongo');
const skip =
  pgSkip ??
  (!mysqlUp ? `skipped: no MariaDB at ${serviceUrl('mysql')}` : undefined) ??
  (!redisUp ? `skipped: no Redis at ${serviceUrl('redis')}` : undefined);
if (skip) console.log(skip);
// Only the MongoDB example needs MongoDB: without it the others still run.
const mongoSkip = mongoUp ? undefined : `skipped: no MongoDB at ${serviceUrl('mongo')} (its README example)`;
if (!skip && mongoSkip) console.log(mongoSkip);

describe.skipIf(skip !== undefined)('README examples', () => {
  let cluster: PrivatePgCluster;
  const database = uniqueName('cp_readme');
  const admin = createMysqlPool({ primary: serviceUrl('mysql') });

  beforeAll(async () => {
    cluster = await startPrivatePgCluster();
    process.env.PRIMARY_URL = cluster.primaryUrl;
    process.env.REPLICA_URL = cluster.replicaUrl;
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(serviceUrl('mysql'));
    url.pathname = `/${database}`;
    process.env.MYSQL_URL = url.toString();
  });

  afterAll(async () => {
    delete process.env.PRIMARY_URL;
    delete process.env.REPLICA_URL;
    delete process.env.MYSQL_URL;
    await admin.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => {});
    await admin.close();
    await cluster?.destroy();
  });

  it('has one expectation per example, each in its file', () => {
    expect(blocks.map((block) => block.file)).toEqual(expectedLogs.map((expected) => expected.file));
  });

  blocks.forEach(({ code, file, line }, index) => {
    const needsMongo = code.includes('createMongoPool');
    it.skipIf(needsMongo && mongoSkip !== undefined)(
      `example ${index + 1} (${file}:${line}) runs and prints what the docs say`,
      async () => {
        expectedLogs[index]!.check(await runReadmeBlock(packageDir, code));
      },
    );
  });
});
