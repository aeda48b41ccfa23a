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

/** The port each URL scheme implies when the URL names none. */
const defaultPorts: Record<string, number> = {
  'redis:': 6379,
  'rediss:': 6379,
  'postgres:': 5432,
  'postgresql:': 5432,
  'mysql:': 3306,
  'mariadb:': 3306,
  'amqp:': 5672,
  'amqps:': 5671,
  'mongodb:': 27017,
  'nats:': 4222,
  'http:': 80,
  'https:': 443,
};

/**
 * Host and port of a service address: a URL (`redis://h:1/0`, `http://localhost:5000`) or a
 * comma-separated `host:port` list whose first entry counts (`KAFKA_BROKERS`). IPv6 hosts keep
 * their brackets off (`::1`). Port 0 means the scheme implies none we know.
 */
export function parseHostPort(address: string): { host: string; port: number } {
  const first = address.split(',')[0]?.trim() ?? '';
  const url = new URL(first.includes('://') ? first : `tcp://${first}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(url.port) || defaultPorts[url.protocol] || 0 };
}

/** Host and port of a service URL (or of a `host:port` list's first entry, as for Kafka). */
export function hostPort(service: ServiceName): { host: string; port: number } {
  return parseHostPort(serviceUrl(service));
}

/** `KAFKA_BROKERS` (or any comma-separated `host:port` list) as an array of `host:port`. */
export function brokerList(value: string = serviceUrl('kafka')): string[] {
  return value
    .split(',')
    .map((entry) => entry.trim().replace(/^[a-z]+:\/\//, ''))
    .filter((entry) => entry.length > 0);
}

/** A URL with its password replaced by `***`, for log lines such as the smoke tests'. */
export function redactUrl(url: string): string {
  if (!url.includes('://')) return url;
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
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
