import { isReachable, type ServiceName, serviceUrl } from './env.js';

/**
 * Vitest global setup of the integration project: prints which services answer, so a run's
 * output shows what it really talked to. It starts nothing: `scripts/services up` does.
 */
export default async function setup(): Promise<void> {
  const services: ServiceName[] = [
    'redis',
    'postgres',
    'mysql',
    'rabbitmq',
    'etcd',
    'nats',
    'kafka',
    'mongo',
    's3',
    'consul',
  ];
  const states = await Promise.all(
    services.map(async (name) => [name, await isReachable(name, 500)] as const),
  );
  const line = states.map(([name, up]) => `${name}=${up ? 'up' : 'down'}`).join(' ');
  console.log(`[noa integration] services: ${line}`);
  for (const [name, up] of states)
    if (!up) console.log(`[noa integration] ${name} not reachable at ${serviceUrl(name)}`);
}
