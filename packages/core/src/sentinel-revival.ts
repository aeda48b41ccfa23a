/**
 * A guard against an ioredis race that ends a Sentinel client for good in a failover. No Redis
 * client is imported here: the client is typed by the little the guard needs.
 *
 * With `failoverDetector: true`, ioredis listens for the sentinels' `+switch-master` and then
 * disconnects the client's connector. When the master died first, the client is already
 * reconnecting: it is asking the sentinels where the master is. The disconnect lands in that
 * lookup, which then fails with "Connection is closed.", and ioredis ends the client (status
 * `end`: no retry, every later command refused) although nobody closed it (ioredis 5.11; seen in
 * the cache's Sentinel kill test on a loaded machine, and in a script that calls the connector's
 * disconnect during the lookup, as the detector does).
 */

/** What {@link reviveSentinelClient} needs of an ioredis client. */
export interface RevivableRedisClient {
  readonly status: string;
  readonly options: { sentinels?: unknown; failoverDetector?: boolean };
  on(event: 'connecting' | 'close' | 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'connecting' | 'close' | 'end', listener: () => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  connect(): Promise<void>;
}

/** ioredis's message for a connection closed under a pending connect (`CONNECTION_CLOSED_ERROR_MSG`). */
const connectionClosedMessage = 'Connection is closed.';

/**
 * Reconnects `client` when ioredis ends it by the race above: a Sentinel client with
 * `failoverDetector: true` whose connect failed with "Connection is closed." while it was
 * connecting, without a `disconnect()` or `quit()` of its user (ioredis's private
 * `manuallyClosing`, read where present). An end after a close (the user's `disconnect()`/`quit()`
 * while connected, a `retryStrategy` that gave up), an end of a connect that failed otherwise
 * (sentinels unreachable with retries disabled) and clients without Sentinel are left alone.
 * `onRevive` runs before each reconnect (for a log line). Returns a function that stops watching:
 * call it when the owner closes. Nothing is attached to a client without the failover detector.
 */
export function reviveSentinelClient(client: RevivableRedisClient, onRevive: () => void): () => void {
  const { sentinels, failoverDetector } = client.options;
  if (!Array.isArray(sentinels) || sentinels.length === 0 || failoverDetector !== true) return () => {};
  let connecting = client.status === 'connecting';
  let lastError: string | undefined;
  const onConnecting = (): void => {
    connecting = true;
    lastError = undefined;
  };
  const onClose = (): void => {
    connecting = false;
  };
  const onError = (error: Error): void => {
    lastError = error.message;
  };
  const onEnd = (): void => {
    const raced =
      connecting &&
      lastError === connectionClosedMessage &&
      (client as unknown as { manuallyClosing?: boolean }).manuallyClosing !== true;
    connecting = false;
    if (!raced) return;
    onRevive();
    // A connect refused again (a user's disconnect meanwhile, "already connecting") leaves the
    // client as ioredis has it; its own failures are reported through its 'error' event.
    client.connect().catch(() => {});
  };
  client.on('connecting', onConnecting);
  client.on('close', onClose);
  client.on('error', onError);
  client.on('end', onEnd);
  return () => {
    client.off('connecting', onConnecting);
    client.off('close', onClose);
    client.off('error', onError);
    client.off('end', onEnd);
  };
}
