import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isReachable, parseHostPort, type ServiceName, serviceDefaults, serviceUrl } from './env.js';

const run = promisify(execFile);

/** How to run one service in a container when neither its env var nor its loopback default works. */
export interface ContainerSpec {
  image: string;
  env?: Record<string, string>;
  command?: string[];
  /** Files written into the container before it starts (e.g. init SQL). */
  files?: { target: string; content: string }[];
}

/**
 * The images the fallback starts. Each binds its loopback default port on the host (not a
 * random one), so the default URL just works, in every test worker, with no env to pass on;
 * Kafka in particular advertises the address it was configured with. UNTESTED on the machines
 * of this repo, which have no Docker engine: see the README.
 */
export const containerSpecs: Record<ServiceName, ContainerSpec> = {
  redis: { image: 'redis:7.2-alpine' },
  postgres: {
    image: 'postgres:15',
    env: { POSTGRES_USER: 'noa', POSTGRES_PASSWORD: 'noa', POSTGRES_DB: 'noa' },
    // The plain image lacks hypopg and pg_qualstats (docker-compose.yml builds them in), so the
    // PostgreSQL smoke test fails on this container; most package tests do not need them.
    command: ['postgres', '-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'wal_level=replica'],
  },
  mysql: {
    image: 'mariadb:10.11',
    // Root-equivalent grants as on the shared server: withMysqlDatabase creates databases.
    env: {
      MARIADB_ROOT_PASSWORD: 'noa',
      MARIADB_USER: 'noa',
      MARIADB_PASSWORD: 'noa',
      MARIADB_DATABASE: 'noa',
    },
  },
  rabbitmq: { image: 'rabbitmq:3-management' },
  etcd: {
    image: 'quay.io/coreos/etcd:v3.5.17',
    command: [
      'etcd',
      '--listen-client-urls=http://0.0.0.0:2379',
      '--advertise-client-urls=http://127.0.0.1:2379',
    ],
  },
  nats: { image: 'nats:2-alpine' },
  kafka: {
    // As in the repo's docker-compose.yml: single KRaft node advertising the host address.
    image: 'apache/kafka:4.4.0',
    env: {
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
      KAFKA_ADVERTISED_LISTENERS: 'PLAINTEXT://127.0.0.1:9092',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    },
  },
  mongo: { image: 'mongo:7' },
  s3: { image: 'motoserver/moto:5.2.3' },
  sqs: { image: 'motoserver/moto:5.2.3' },
  cloudfront: { image: 'motoserver/moto:5.2.3' },
  consul: { image: 'hashicorp/consul:1.20', command: ['agent', '-dev', '-client=0.0.0.0'] },
};

let dockerAnswer: Promise<boolean> | undefined;

/** True when a Docker engine answers `docker info` (checked once per process). */
export function dockerAvailable(): Promise<boolean> {
  dockerAnswer ??= run('docker', ['info'], { timeout: 10_000 }).then(
    () => true,
    () => false,
  );
  return dockerAnswer;
}

/** A container the fallback started; stop it in a teardown (testcontainers' reaper also removes it). */
export interface StartedService {
  readonly url: string;
  stop(): Promise<void>;
}

const started = new Map<string, Promise<StartedService>>();

/** Starts `service`'s container with testcontainers (imported only here), bound to its default port. */
export async function startServiceContainer(service: ServiceName): Promise<StartedService> {
  const { url } = serviceDefaults[service];
  const spec = containerSpecs[service];
  const key = `${spec.image}:${parseHostPort(url).port}`;
  let starting = started.get(key);
  if (!starting) {
    starting = (async () => {
      const { GenericContainer } = await import('testcontainers');
      const { port } = parseHostPort(url);
      let container = new GenericContainer(spec.image).withExposedPorts({ container: port, host: port });
      if (service === 'rabbitmq') container = container.withExposedPorts({ container: 15672, host: 15672 });
      if (spec.env) container = container.withEnvironment(spec.env);
      if (spec.command) container = container.withCommand(spec.command);
      if (spec.files) container = container.withCopyContentToContainer(spec.files);
      const running = await container.withStartupTimeout(120_000).start();
      return {
        url,
        stop: async () => {
          await running.stop();
        },
      };
    })();
    started.set(key, starting);
    // A failed start is not cached: the next caller tries again.
    starting.catch(() => started.delete(key));
  }
  return starting;
}

/**
 * The URL to use for `service`, or undefined when there is none, in this order: its env var
 * if set to something other than the default (an external server, trusted as is); else its
 * loopback default if it answers; else, when a Docker engine answers, a container started
 * with testcontainers on the default port (and the env var set); else undefined, and the
 * caller skips with `skipped: no X at …`. An env var equal to the default counts as unset,
 * as in `scripts/services` (whose `env` command exports the defaults).
 */
export async function ensureService(service: ServiceName): Promise<string | undefined> {
  const { env, url } = serviceDefaults[service];
  const fromEnv = process.env[env];
  if (fromEnv && fromEnv !== url) return fromEnv;
  if (await isReachable(service)) return url;
  if (!(await dockerAvailable())) return undefined;
  try {
    const container = await startServiceContainer(service);
    process.env[env] = container.url;
    return container.url;
  } catch (error) {
    // An image that cannot be pulled (offline) means "no such service", not a crash.
    console.log(`[noa testkit] could not start ${service} with testcontainers: ${(error as Error).message}`);
    return undefined;
  }
}

/** Stops every container this process started through {@link ensureService}. */
export async function stopServiceContainers(): Promise<void> {
  const all = [...started.values()];
  started.clear();
  await Promise.allSettled(all.map(async (starting) => (await starting).stop()));
}

/**
 * For services that cannot be had on every machine (Consul, MongoDB wire): returns the reason
 * to skip, printed as `skipped: no Consul at …`, or undefined when the service answers (or,
 * its env var unset and a Docker engine present, once {@link ensureService} started it).
 */
export async function skipReason(service: ServiceName, label: string): Promise<string | undefined> {
  if (await isReachable(service)) return undefined;
  if ((await ensureService(service)) && (await isReachable(service))) return undefined;
  const reason = `skipped: no ${label} at ${serviceUrl(service)} (set ${serviceDefaults[service].env}, or run scripts/services up)`;
  console.log(reason);
  return reason;
}

/**
 * The URL of a service CI always brings up ({@link ensureService}), or a thrown error naming
 * it: for tests that must FAIL rather than skip when the service is missing, because a skip
 * would hide a broken `scripts/services`.
 */
export async function requireService(service: ServiceName, label: string = service): Promise<string> {
  const url = await ensureService(service);
  if (url && (await isReachable(service))) return url;
  const { env } = serviceDefaults[service];
  throw new Error(
    `no ${label} at ${url ?? serviceUrl(service)}: CI starts it with scripts/services up (or set ${env})`,
  );
}
