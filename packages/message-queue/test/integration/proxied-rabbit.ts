import { type RecordingLogger, startTcpProxy, type TcpProxy } from '@noa/testkit';
import type { Registry } from 'prom-client';
import { RabbitMqProvider, type RabbitMqProviderOptions } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

/** What the provider logs (warn) when it sees its connection lost. */
export const lostWarning = 'RabbitMQ connection lost; reconnecting';

/** How many times the provider logged {@link lostWarning} so far. */
export function lostWarnings(logger: RecordingLogger): number {
  return logger.messages('warn').filter((message) => message === lostWarning).length;
}

/**
 * Waits until the held job ran (`runs` has its one entry), cuts the proxy, and waits until the
 * provider has seen that connection lost (a new {@link lostWarning}).
 */
export async function cutWhileRunning(
  proxy: TcpProxy,
  logger: RecordingLogger,
  runs: readonly string[],
): Promise<void> {
  await waitFor(() => runs.length === 1, 10_000, 'the job to run');
  const before = lostWarnings(logger);
  await proxy.down();
  await waitFor(() => lostWarnings(logger) > before, 10_000, 'the provider to see its connection lost');
}

/** A gate a handler waits on until the test opens it. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

/** A TCP proxy in front of the broker at `brokerUrl`, and the AMQP URL that goes through it. */
export async function proxiedUrl(brokerUrl: string): Promise<{ proxy: TcpProxy; url: string }> {
  const broker = new URL(brokerUrl);
  const proxy = await startTcpProxy({ host: broker.hostname, port: Number(broker.port || 5672) });
  const proxied = new URL(brokerUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(proxy.port);
  return { proxy, url: proxied.toString() };
}

/** A provider that reconnects quickly (50–200 ms) and logs to `logger`, with any other options. */
export function reconnectingProvider(
  url: string,
  logger: RecordingLogger,
  options: Omit<RabbitMqProviderOptions, 'url' | 'logger'> = {},
): RabbitMqProvider {
  return new RabbitMqProvider({ url, reconnectDelayMs: 50, maxReconnectDelayMs: 200, logger, ...options });
}

/**
 * Worker options for a job held through a connection loss: one at a time, and a lease long enough
 * that no heartbeat falls while the connection is down (one would abort the try: not these cases).
 */
export const heldJobWorker = { concurrency: 1, leaseMs: 180_000 } as const;

/** A queue counter's value (`noa_message_queue_<name>`) for one queue; 0 when it has no series. */
export async function counter(registry: Registry, name: string, queue: string): Promise<number> {
  const metric = await registry.getSingleMetric(`noa_message_queue_${name}`)?.get();
  return metric?.values.find((value) => value.labels.queue === queue)?.value ?? 0;
}
