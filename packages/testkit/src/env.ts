import net from 'node:net';

/** Every service the integration tests use, with its environment variable and loopback default. */
export const serviceDefaults = {
  redis: { env: 'REDIS_URL', url: 'redis://127.0.0.1:6379' },
  postgres: { env: 'DATABASE_URL', url: 'postgres://noa:noa@127.0.0.1:5432/noa' },
  mysql: { env: 'MYSQL_URL', url: 'mysql://noa:noa@127.0.0.1:3306/noa' },
  rabbitmq: { env: 'AMQP_URL', url: 'amqp://guest:guest@127.0.0.1:5672' },
  etcd: { env: 'ETCD_URL', url: 'http://127.0.0.1:2379' },
  nats: { env: 'NATS_URL', url: 'nats://127.0.0.1:4222' },
  kafka: { env: 'KAFKA_BROKERS', url: '127.0.0.1:9092' },
  mongo: { env: 'MONGO_URL', url: 'mongodb://127.0.0.1:27017/noa' },
  s3: { env: 'S3_ENDPOINT', url: 'http://localhost:5000' },
  sqs: { env: 'SQS_ENDPOINT', url: 'http://localhost:5000' },
  cloudfront: { env: 'CLOUDFRONT_ENDPOINT', url: 'http://localhost:5000' },
  consul: { env: 'CONSUL_URL', url: 'http://127.0.0.1:8500' },
} as const;

/** A service name known to the test kit. */
export type ServiceName = keyof typeof serviceDefaults;

/** The URL of `service`: its environment variable if set, else the loopback default. */
export function serviceUrl(service: ServiceName): string {
  const { env, url } = serviceDefaults[service];
  return process.env[env] || url;
}

/** Host and port of a service URL (or of a `host:port` list's first entry, as for Kafka). */
export function hostPort(service: ServiceName): { host: string; port: number } {
  const raw = serviceUrl(service).split(',')[0] ?? '';
  const url = new URL(raw.includes('://') ? raw : `tcp://${raw}`);
  const defaults: Record<string, number> = { 'redis:': 6379, 'http:': 80, 'amqp:': 5672, 'mongodb:': 27017 };
  return { host: url.hostname, port: Number(url.port) || defaults[url.protocol] || 0 };
}

/** Resolves true when a TCP connection to the service opens within `timeoutMs`. */
export function isReachable(service: ServiceName, timeoutMs = 1_000): Promise<boolean> {
  const { host, port } = hostPort(service);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * For services that cannot be had on every machine (Consul, a real MongoDB): returns the
 * reason to skip, printed as `skipped: no Consul at …`, or undefined when reachable.
 */
export async function skipReason(service: ServiceName, label: string): Promise<string | undefined> {
  if (await isReachable(service)) return undefined;
  const reason = `skipped: no ${label} at ${serviceUrl(service)} (set ${serviceDefaults[service].env} or run docker compose up ${service})`;
  console.log(reason);
  return reason;
}
