import { createRequire } from 'node:module';
import type { Cluster, Command } from 'ioredis';
import type { RedisClockOffset } from './redis-clock.js';

/**
 * Sending a Cluster call so that its failure tells whether it ever reached a server, and the
 * wait before sending one that did not again (see {@link neverSent}).
 *
 * ioredis 5 rejects a command without writing it when the master that serves its slot is not
 * connected: the Cluster refuses it with "Connection is closed." when that master's connection is
 * connecting, closing or closed (a replica promoted by a graceful `CLUSTER FAILOVER` is such a
 * master until its first connection is up; a MOVED reply sends the call there at once), a node at
 * its end refuses it the same way, and with the offline queue off a Cluster that is not ready
 * refuses it ("Cluster isn't ready…", "Stream isn't writeable…"). Yet "Connection is closed." is
 * also how a node whose connection closes fails the commands it had written and not heard back
 * from, which may have run. The message alone cannot tell; the command can: it records the socket
 * it was last written to (`toWritable`, which ioredis calls exactly when it writes a command). A
 * command never written was never run; one whose last socket is still open was not failed by that
 * socket's close, so its last write was answered (MOVED, ASK, TRYAGAIN: replies that ran nothing)
 * and the refusal came from the attempt after it, unsent.
 */

/** The messages of ioredis refusals that may mean "not written" (see {@link neverSent}). */
const refusalMessages = new Set([
  'Connection is closed.',
  "Cluster isn't ready and enableOfflineQueue options is false",
  "Stream isn't writeable and enableOfflineQueue options is false",
]);

/** The failures of calls proven never to have reached a server. */
const unsentFailures = new WeakSet<object>();

/**
 * True when `error` is the failure of a Cluster call sent by {@link ClusterCommands} that provably
 * never reached a server: sending it again cannot count it twice.
 */
export function neverSent(error: unknown): boolean {
  return typeof error === 'object' && error !== null && unsentFailures.has(error);
}

/** ioredis's `Command` with whether it was written, and the socket it was last written to. */
interface WriteTrackingCommand extends Command {
  written: boolean;
  lastSocket: { destroyed?: boolean } | undefined;
}

type CommandClass = new (name: string, args: (string | number)[], options: object) => WriteTrackingCommand;

let trackingClass: CommandClass | undefined;

/**
 * `Command` of the ioredis the store resolves, extended: loaded when a Cluster store is made, so
 * that ioredis stays an optional peer for users of the memory store.
 */
function commandClass(): CommandClass {
  if (trackingClass !== undefined) return trackingClass;
  const { Command: Base } = createRequire(import.meta.url)('ioredis') as { Command: typeof Command };
  trackingClass = trackingCommandClass(Base);
  return trackingClass;
}

/**
 * `Base` extended to record its writes. Throws when `Base` has no `toWritable`: its writes would go
 * unseen and every refusal, a written command's included, would read as never sent.
 */
function trackingCommandClass(Base: typeof Command): CommandClass {
  if (typeof Base.prototype.toWritable !== 'function')
    throw new TypeError('ioredis Command has no toWritable: writes cannot be tracked');
  return class extends Base {
    written = false;
    lastSocket: { destroyed?: boolean } | undefined = undefined;
    override toWritable(socket: object): string | Buffer {
      this.written = true;
      this.lastSocket = socket as { destroyed?: boolean } | undefined;
      return super.toWritable(socket);
    }
  } as unknown as CommandClass;
}

/** Sends FCALL, EVALSHA and EVAL on a Cluster as commands that know whether they were written. */
export class ClusterCommands {
  readonly #client: Cluster;
  readonly #Command: CommandClass;
  readonly #options: object;

  /**
   * The sender for `client`; `undefined` when this package cannot load ioredis itself (the client
   * came from a copy it does not see) or its `Command` has no `toWritable` to record writes: calls
   * then go through the client's own methods, and a refused call gets the fail mode as before.
   * `Base`: the `Command` class to extend instead of the loaded one's (tests of other versions).
   */
  static of(client: Cluster, Base?: typeof Command): ClusterCommands | undefined {
    try {
      return new ClusterCommands(client, Base === undefined ? commandClass() : trackingCommandClass(Base));
    } catch {
      return undefined;
    }
  }

  private constructor(client: Cluster, TrackingCommand: CommandClass) {
    this.#client = client;
    this.#Command = TrackingCommand;
    // What ioredis's own command methods pass (strings back, the client's key prefix).
    const keyPrefix = (client.options as { keyPrefix?: string } | undefined)?.keyPrefix;
    this.#options =
      keyPrefix === undefined ? { replyEncoding: 'utf8' } : { replyEncoding: 'utf8', keyPrefix };
  }

  /**
   * `name head numkeys ...keys ...args` (FCALL function, EVALSHA sha, EVAL script). `redirected`:
   * called when ioredis follows a MOVED or ASK reply to `node` (its `host:port` as the reply names
   * it), before it sends the command there; it returns the value of `args[0]` there (the call's
   * expiry, which must be in that node's clock: ioredis would send the one written for the first).
   */
  send(
    name: 'fcall' | 'evalsha' | 'eval',
    head: string,
    keys: readonly string[],
    args: readonly (string | number)[],
    redirected?: (node: string) => string | number,
  ): Promise<unknown> {
    const command = new this.#Command(name, [head, keys.length, ...keys, ...args], this.#options);
    const sent = this.#client.sendCommand(command) as Promise<unknown>;
    if (redirected !== undefined) beforeRedirect(command, 2 + keys.length, redirected);
    return sent.catch((error: unknown) => {
      if (!wasNeverSent(command, error)) throw error;
      // A failure of its own: ioredis fails every command of a closing node with one Error
      // instance, written ones (that may have run) with unwritten ones, so that instance cannot
      // carry the mark.
      const unsent = new Error((error as Error).message, { cause: error });
      unsentFailures.add(unsent);
      throw unsent;
    });
  }
}

/**
 * Sets `command.args[index]` by `redirected` before ioredis follows a MOVED or ASK reply. ioredis's
 * Cluster replaces `command.reject` when it first sends a command, with the handler that follows
 * redirections by sending the same `Command` (its `args` written again) to the node the reply
 * names; this wraps that handler, so it runs first. Other errors pass through untouched.
 */
function beforeRedirect(
  command: Command,
  index: number,
  redirected: (node: string) => string | number,
): void {
  const follow = command.reject;
  command.reject = (error: Error) => {
    const [kind, , node] = String(error?.message).split(' ');
    if ((kind === 'MOVED' || kind === 'ASK') && node !== undefined)
      command.args[index] = String(redirected(node));
    follow.call(command, error);
  };
}

function wasNeverSent(command: WriteTrackingCommand, error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if (!refusalMessages.has(String((error as Error).message))) return false;
  if (!command.written) return true;
  // A write to a socket not named, or one without a state, may have run: only an open one proves
  // the write was answered (a redirection) and the refusal came after it.
  return command.lastSocket?.destroyed === false;
}

/** Longest wait for a slot map refresh before a resend (a refresh takes one round trip). */
const refreshWaitMs = 100;

/** The refresh each Cluster's resends wait for, shared: one listener however many calls wait. */
const refreshes = new WeakMap<Cluster, Promise<void>>();

/**
 * Resolves once `client` has refreshed its slot map (asked for here), or after
 * {@link refreshWaitMs}: a call refused for a master that is connected, or that the slot map does
 * not know, goes where the map says after it.
 */
export function slotsRefreshed(client: Cluster): Promise<void> {
  let refresh = refreshes.get(client);
  if (refresh !== undefined) return refresh;
  refresh = new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('refresh', done);
      refreshes.delete(client);
      resolve();
    };
    const timer = setTimeout(done, refreshWaitMs);
    timer.unref();
    client.on('refresh', done);
    client.refreshSlotsCache();
  });
  refreshes.set(client, refresh);
  return refresh;
}

/**
 * The expiry argument (Redis ms; 0: none) of a call about to be sent to the server whose clock
 * offset is `clock`, for a caller that gives up at local `giveUpAtMs` (none: `previous` stays);
 * `previous` is the expiry it carried so far (0 for a call not sent yet).
 *
 * Always in the clock of the server it goes to, never the one a previous send carried: a call
 * resent after a failover runs on the promoted replica, whose clock may differ from the old
 * master's by hundreds of ms, and would read the old expiry shifted by the skew (a clock ahead
 * skips a call its caller still waits for, one behind runs it after its caller gave up). A server
 * not heard from yet gets none: a first call's is unknowable, and the store learns a server's clock
 * (its `TIME`) before it resends a call there.
 */
export function stampedExpiry(
  previous: number,
  clock: RedisClockOffset | undefined,
  giveUpAtMs: number | undefined,
): number {
  if (giveUpAtMs === undefined) return previous;
  return clock?.expiryFor(giveUpAtMs) ?? 0;
}
