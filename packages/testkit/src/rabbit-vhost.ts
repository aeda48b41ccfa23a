import { serviceUrl } from './env.js';
import { uniqueName } from './namespace.js';

/** The RabbitMQ management API: `RABBITMQ_MANAGEMENT_URL`, else guest/guest on loopback port 15672. */
export function rabbitManagementUrl(): string {
  return process.env.RABBITMQ_MANAGEMENT_URL || 'http://guest:guest@127.0.0.1:15672';
}

/** A RabbitMQ virtual host created for one test. */
export interface RabbitVhost {
  readonly vhost: string;
  /** The AMQP URL with the vhost as its path. */
  readonly url: string;
  /** Deletes the vhost with all its exchanges and queues. */
  drop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of {@link withRabbitVhost}. */
export interface RabbitVhostOptions {
  /** AMQP URL whose user gets full permissions on the vhost; default `AMQP_URL`. */
  amqpUrl?: string;
  /** Management API base URL with credentials; default {@link rabbitManagementUrl}. */
  managementUrl?: string;
  /** The vhost name; default a unique name. */
  vhost?: string;
}

/** `amqpUrl` pointed at `vhost` (the AMQP URL path is the URL-encoded vhost). */
export function withVhostPath(amqpUrl: string, vhost: string): string {
  const parsed = new URL(amqpUrl);
  parsed.pathname = `/${encodeURIComponent(vhost)}`;
  return parsed.toString();
}

async function management(base: string, method: string, pathName: string, body?: unknown): Promise<void> {
  const url = new URL(base);
  const auth = Buffer.from(
    `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`,
  ).toString('base64');
  url.username = '';
  url.password = '';
  const response = await fetch(new URL(pathName, url), {
    method,
    headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok && !(method === 'DELETE' && response.status === 404))
    throw new Error(`RabbitMQ management ${method} ${pathName}: ${response.status} ${await response.text()}`);
}

/**
 * Creates a vhost through the management HTTP API (PUT /api/vhosts/<name>), grants the AMQP
 * URL's user configure/write/read on it, and returns the AMQP URL for it and `drop()`.
 */
export async function withRabbitVhost(options: RabbitVhostOptions = {}): Promise<RabbitVhost> {
  const amqpUrl = options.amqpUrl ?? serviceUrl('rabbitmq');
  const base = options.managementUrl ?? rabbitManagementUrl();
  const vhost = options.vhost ?? uniqueName('v');
  const user = decodeURIComponent(new URL(amqpUrl).username) || 'guest';
  const encoded = encodeURIComponent(vhost);
  await management(base, 'PUT', `/api/vhosts/${encoded}`, {});
  await management(base, 'PUT', `/api/permissions/${encoded}/${encodeURIComponent(user)}`, {
    configure: '.*',
    write: '.*',
    read: '.*',
  });
  const drop = () => management(base, 'DELETE', `/api/vhosts/${encoded}`);
  return { vhost, url: withVhostPath(amqpUrl, vhost), drop, [Symbol.asyncDispose]: drop };
}
