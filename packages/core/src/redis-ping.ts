/**
 * The PING of an active health check on an ioredis client (`Redis`, a Sentinel-backed `Redis`,
 * or `Cluster`), shared by the packages that keep state in Redis. No Redis client is imported
 * here: the client is typed by the little it needs.
 */

/** What {@link pingRedis} needs of one ioredis connection. */
export interface RedisPingNode {
  readonly status?: string;
  ping(): Promise<unknown>;
}

/** What {@link pingRedis} needs of an ioredis client: a node, or a Cluster with its masters. */
export interface RedisPingClient extends RedisPingNode {
  readonly isCluster?: boolean;
  nodes?(role: 'master'): RedisPingNode[];
}

/** A PING not sent: the connection is down (ioredis would queue it until it reconnects). */
export class RedisNotConnectedError extends Error {
  readonly code = 'NOA_REDIS_NOT_CONNECTED';
  // Its own name, not Error's: health reports give a cause as name, code and message.
  override readonly name = 'RedisNotConnectedError';
  constructor(status: string) {
    super(`redis connection ${status}; PING not sent`);
  }
}

/** ioredis statuses in which a command is queued (or refused) rather than sent. */
const downStatuses: ReadonlySet<string | undefined> = new Set(['reconnecting', 'close', 'end']);

async function pingNode(node: RedisPingNode): Promise<void> {
  // A client that lost its connection would hold the PING in its offline queue until Redis is
  // back: the check would only learn it by its deadline, and the PING would be sent late.
  if (downStatuses.has(node.status)) throw new RedisNotConnectedError(node.status!);
  await node.ping();
}

/** Options of {@link pingRedis}. */
export interface PingRedisOptions {
  /**
   * On a Cluster, which masters must answer: `all` (the default: a readiness check, since a
   * Cluster with one master frozen fails the keys of its slots) or `any` (a circuit breaker's
   * probe on a backend whose masters fail apart: one answering master means Redis is there, and
   * the keys of a frozen one fail alone). Ignored for a single node.
   */
  readonly masters?: 'all' | 'any';
}

/**
 * PINGs what serves `client`'s commands: a single node (for a Sentinel client, the master it is
 * connected to, which is where its commands go), or every master a Cluster client knows (a
 * Cluster with one master frozen fails the keys of its slots). A Cluster that knows no master yet
 * (still connecting) is PINGed through the client, which sends it to a node once ready. Resolves
 * when all answered (with `masters: 'any'`, when one did: a keyless `client.ping()` would ask one
 * master picked at random); rejects with the first failure (`RedisNotConnectedError` for a
 * connection that is down; with `any`, once every master failed). No deadline of its own: the
 * caller bounds it.
 */
export async function pingRedis(client: RedisPingClient, options: PingRedisOptions = {}): Promise<void> {
  if (client.isCluster === true && typeof client.nodes === 'function') {
    const masters = client.nodes('master');
    if (masters.length > 0) {
      if (options.masters !== 'any') {
        await Promise.all(masters.map(pingNode));
        return;
      }
      const pings = masters.map(pingNode);
      // The PINGs of masters that do not answer land or fail on their own.
      for (const ping of pings) ping.catch(() => {});
      await Promise.any(pings).catch((error: unknown) => {
        throw error instanceof AggregateError ? error.errors[0] : error;
      });
      return;
    }
  }
  await pingNode(client);
}
