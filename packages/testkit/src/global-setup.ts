import { dockerAvailable, ensureService, stopServiceContainers } from './ensure-service.js';
import { isReachable, type ServiceName, serviceUrl } from './env.js';

/**
 * Vitest global setup of the integration project: prints which services answer, so a run's
 * output shows what it really talked to. It starts nothing when they answer (`scripts/services
 * up` does that). For a service whose env var is unset and whose loopback default does not
 * answer, and only when a Docker engine answers, it starts a container with testcontainers on
 * the default port (untested here: no Docker on this repo's machines) and stops it afterwards.
 */
export default async function setup(): Promise<() => Promise<void>> {
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
  const probe = () =>
    Promise.all(services.map(async (name) => [name, await isReachable(name, 500)] as const));
  let states = await probe();
  const missing = states.filter(([, up]) => !up);
  if (missing.length > 0 && (await dockerAvailable())) {
    // ensureService leaves alone a service whose env var names another server.
    for (const [name] of missing) {
      console.log(`[noa integration] starting ${name} with testcontainers`);
      await ensureService(name);
    }
    states = await probe();
  }
  const line = states.map(([name, up]) => `${name}=${up ? 'up' : 'down'}`).join(' ');
  console.log(`[noa integration] services: ${line}`);
  for (const [name, up] of states)
    if (!up) console.log(`[noa integration] ${name} not reachable at ${serviceUrl(name)}`);
  return stopServiceContainers;
}
