import { isReachable, serviceUrl } from '@noa/testkit';
import { Redis } from 'ioredis';

/** The shared Redis URL, whether it answers, and a connection factory that tests close. */
export async function redisContext(): Promise<{
  url: string;
  reachable: boolean;
  connect: () => Redis;
  closeAll: () => Promise<void>;
}> {
  const url = serviceUrl('redis');
  const reachable = await isReachable('redis');
  if (!reachable) console.log(`skipped: no Redis at ${url}`);
  const connections: Redis[] = [];
  return {
    url,
    reachable,
    connect: () => {
      const connection = new Redis(url, { maxRetriesPerRequest: null });
      connections.push(connection);
      return connection;
    },
    closeAll: async () => {
      await Promise.all(connections.splice(0).map((connection) => connection.quit()));
    },
  };
}
