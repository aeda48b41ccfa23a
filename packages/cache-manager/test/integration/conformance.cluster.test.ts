import { type PrivateRedisCluster, startRedisCluster, uniqueName } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { describeCacheConformance } from '../conformance/cache-conformance.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('a private Redis Cluster');

let cluster: PrivateRedisCluster | undefined;
let client: Cluster | undefined;

beforeAll(async () => {
  if (!hasRedisServer) return;
  cluster = await startRedisCluster(3);
  client = new Cluster(cluster.nodes);
  await new Promise<void>((resolve) => client!.once('ready', () => resolve()));
});

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

describeCacheConformance(
  'memory + Redis Cluster (3 masters)',
  true,
  () => {
    const prefix = `${uniqueName('cm_cluster')}:`;
    return { options: () => ({ redis: client!, prefix }) };
  },
  !hasRedisServer,
);
