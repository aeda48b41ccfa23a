import { type HealthReport, MetricsFactory, maxTimerMs, parseOptions, withDeadline } from '@noa/core';
import type { Command, Redis, RedisOptions } from 'ioredis';
import { z } from 'zod';
import { urlScheme } from './cluster-options.js';
import { redisConnectionStringProblem } from './connection-string.js';
import {
  AcquireTimeoutError,
  AuthenticationFailedError,
  BackendUnavailableError,
  errorText,
  PoolClosedError,
  QueryTimeoutError,
} from './errors.js';
import { type CheckHealthOptions, HealthCheckGate, serverReport } from './health.js';
import { lazyPeer } from './lazy-peer.js';
import { errorsHelp } from './metrics.js';
import { type AcquireOptions, type CloseReport, lendsWithoutWaiting, Pool, type PoolStats } from './pool.js';
import { poolOptionsObject, timerBoundMessage } from './pool-options.js';
import { redactOptions } from './redact.js';

/** Loads the optional `ioredis` peer dependency on first use. */
const loadIoredis = lazyPeer<typeof import('ioredis')>('ioredis');

const CONNECTION_ERROR =
  /Stream isn't writeable|Connection is closed|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|socket closed/i;

/** True for errors that mean the socket is gone, whatever state ioredis reports yet. */
function isConnectionError(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (typeof code === 'string' && CONNECTION_ERROR.test(code)) ||
    (typeof message === 'string' && CONNECTION_ERROR.test(message))
  );
}

/** Redis refused the credentials: a wrong password or user (WRONGPASS), or none given (NOAUTH). */
function isAuthenticationError(error: unknown): boolean {
  const message = (error as { message?: unknown } | null | undefined)?.message;
  return typeof message === 'string' && /\b(WRONGPASS|NOAUTH)\b/.test(message);
}

/** The socket under an ioredis client (undefined before it connects). */
function socketOf(client: Redis): { ref?(): void; unref?(): void } | undefined {
  return (client as unknown as { stream?: { ref?(): void; unref?(): void } }).stream;
}

function isConnectionClosed(error: unknown): boolean {
  return (error as { message?: unknown } | null | undefined)?.message === 'Connection is closed.';
}

/** What ioredis keeps of a connection's session: the database it SELECTed, subscriber mode. */
interface IoredisCondition {
  select?: number;
  subscriber?: unknown;
}

/** Transaction state a borrower may leave on a connection, seen from the commands it sent. */
interface SessionState {
  /** WATCH sent, and no EXEC, DISCARD or UNWATCH since. */
  watching: boolean;
  /** MULTI sent, and no EXEC or DISCARD since. */
  inMulti: boolean;
  /**
   * A command changed who the connection is or whether it is answered (`AUTH`, `HELLO`, `RESET`,
   * `CLIENT REPLY`): no single command puts that back, so the connection is closed when given back.
   */
  replaced: boolean;
}

/** Commands after which a connection is not lent again (see `SessionState#replaced`). */
function replacesSession(command: Command): boolean {
  switch (command.name.toLowerCase()) {
    case 'auth':
    case 'hello':
    case 'reset':
      return true;
    case 'client':
      return String(command.args[0]).toLowerCase() === 'reply';
    default:
      return false;
  }
}

/** Commands that put a connection in subscriber mode once answered (ioredis' ENTER_SUBSCRIBER_MODE). */
const SUBSCRIBE_COMMANDS = new Set(['subscribe', 'psubscribe', 'ssubscribe']);

/**
 * True when a command sent on `client` that must not meet the next borrower still waits for its
 * answer (a borrower gave the connection back without awaiting it): a blocking command (`BLPOP`),
 * which the next borrower's commands would queue behind, for ever with a timeout of 0, or a
 * `SUBSCRIBE`, whose answer puts the connection in subscriber mode under the next borrower
 * (ioredis notes the mode only when the answer comes, so `condition.subscriber` is still false).
 */
function unsafeCommandWaits(client: Redis): boolean {
  const queue = (
    client as unknown as { commandQueue?: { length: number; toArray(): { command?: Command }[] } }
  ).commandQueue;
  if (queue === undefined || queue.length === 0) return false;
  return queue.toArray().some(({ command }) => {
    const name = command?.name.toLowerCase();
    return (
      name !== undefined &&
      (BLOCKING_COMMANDS.has(name) || SUBSCRIBE_COMMANDS.has(name) || name === 'wait' || name === 'waitaof')
    );
  });
}

/** ioredis' own `commandTimeout` rejects with this plain Error (and leaves the connection open). */
const IOREDIS_COMMAND_TIMEOUT = 'Command timed out';

/** Commands whose server-side wait is an argument, in seconds (ioredis' list of blocking commands). */
const BLOCKING_COMMANDS = new Set([
  'blpop',
  'brpop',
  'brpoplpush',
  'blmove',
  'bzpopmin',
  'bzpopmax',
  'bzmpop',
  'blmpop',
  'xread',
  'xreadgroup',
]);

/**
 * How long `command` may wait for its answer: `queryTimeoutMs`, or for a blocking command the
 * wait it asked the server for plus `queryTimeoutMs` (the server answers nil at its end), or
 * undefined for one that blocks for ever (`BLPOP k 0`, `XREAD BLOCK 0`): a frozen server cannot
 * be told from an empty queue there, so only the health probe notices it.
 */
export function commandDeadlineMs(command: Command, queryTimeoutMs: number): number | undefined {
  const name = command.name.toLowerCase();
  if (BLOCKING_COMMANDS.has(name)) {
    // Seconds as ms, 0 for "for ever", null for XREAD without BLOCK (it does not block).
    const waitMs = command.extractBlockingTimeout();
    if (waitMs === null) return queryTimeoutMs;
    if (waitMs === undefined || waitMs <= 0) return undefined;
    return waitMs + queryTimeoutMs;
  }
  if (name === 'wait' || name === 'waitaof') {
    // WAIT numreplicas timeout-ms / WAITAOF numlocal numreplicas timeout-ms; 0 waits for ever.
    const waitMs = Number(command.args[command.args.length - 1]);
    if (!Number.isFinite(waitMs) || waitMs <= 0) return undefined;
    return waitMs + queryTimeoutMs;
  }
  return queryTimeoutMs;
}

/**
 * Options of {@link createRedisPool}: the pool options plus where Redis is. Defaults are
 * small (`max` 4): ioredis multiplexes ordinary commands over one connection, so this pool is
 * only for commands that block (`BLPOP`, `XREAD BLOCK`) or need the connection to themselves
 * (`WATCH`/`MULTI`, `SUBSCRIBE`).
 */
export const redisPoolOptionsSchema = poolOptionsObject
  .extend({
    /** `redis://…` / `rediss://…` URL (or a socket path) or ioredis options. */
    redis: z.union([
      z
        .string()
        .min(1)
        .refine((url) => ['redis', 'rediss', undefined].includes(urlScheme(url)), {
          message: 'not a redis:// or rediss:// URL (another database?)',
          abort: true,
        })
        .superRefine((url, context) => {
          const message = redisConnectionStringProblem(url);
          if (message !== undefined) context.addIssue({ code: 'custom', message });
        }),
      z.record(z.string(), z.unknown()),
    ]),
    name: z.string().min(1).default('redis'),
    max: z.number().int().positive().default(4),
    /** Connect timeout per connection, handshake (ready check) included. */
    connectTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(5_000),
    /**
     * A command not answered within this long rejects with `QueryTimeoutError` (counted in
     * `errors_total{kind="query_timeout"}`), as does everything else in flight on its
     * connection, which is closed: a frozen or partitioned server would otherwise hold the
     * caller for ever. Blocking commands get their own wait plus this; ones that block for
     * ever (`BLPOP k 0`) get no deadline. Off by default, like the SQL pools'.
     */
    queryTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).optional(),
    /**
     * How often a PING on an idle connection checks the server (unref'd timer; off by
     * default). Without it `health()` only learns of failures from traffic; with it a frozen
     * server turns `health()` unhealthy within this interval plus the probe's deadline
     * (`queryTimeoutMs`, else `connectTimeoutMs`).
     */
    healthCheckIntervalMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).optional(),
  })
  .refine((options) => options.max >= options.min, { path: ['max'], message: 'max must be >= min' });

/** Options accepted by {@link createRedisPool}. */
export type RedisPoolOptions = Omit<z.input<typeof redisPoolOptionsSchema>, 'redis'> & {
  redis: string | RedisOptions;
};

/** What {@link RedisPool.health} returns: its own fields, and a {@link HealthReport}'s. */
export interface RedisPoolHealth extends HealthReport {
  healthy: boolean;
  reason?: 'down' | 'unresponsive';
  /** The error behind `down`, as text (its `cause` chain under it). */
  error?: string;
  errorCode?: string;
  stats: PoolStats;
}

/**
 * A small pool of dedicated ioredis connections with the same health, metrics and leak
 * detection as the SQL pools. Each connection has ioredis' own reconnection turned off: a
 * broken one is replaced by the pool, and an unreachable server fails fast.
 */
export class RedisPool {
  /** The underlying generic pool (stats, leaks, drain). */
  readonly pool: Pool<Redis>;
  #closed = false;
  /** Set by a command or probe that got no answer in time; cleared by the next answer. */
  #unresponsive = false;
  readonly #timedOut = new WeakMap<Redis, QueryTimeoutError>();
  readonly #sessions = new WeakMap<Redis, SessionState>();
  readonly #errors: { inc(labels: { pool: string; kind: string }): void };
  readonly #commandTimeoutMs: number | undefined;
  readonly #probeDeadlineMs: number;
  #probeTimer: NodeJS.Timeout | undefined;
  #probing: Promise<void> | undefined;
  /** Aborted by close(): the probe in flight gives up instead of holding close() for its deadline. */
  #probeAbort: AbortController | undefined;
  readonly #healthCheck: HealthCheckGate<RedisPoolHealth>;
  /** The options as parsed, for `toJSON()` (where Redis is and the deadlines, not only the pool's). */
  readonly #options: z.output<typeof redisPoolOptionsSchema>;

  constructor(options: RedisPoolOptions) {
    this.#options = parseOptions('redis pool', redisPoolOptionsSchema, options);
    const { redis, connectTimeoutMs, queryTimeoutMs, healthCheckIntervalMs, ...poolOptions } = this.#options;
    const base: RedisOptions = typeof redis === 'string' ? {} : (redis as RedisOptions);
    this.#commandTimeoutMs = base.commandTimeout;
    this.#probeDeadlineMs = queryTimeoutMs ?? connectTimeoutMs;
    // The same series the generic pool registers (a shared registry returns the same counter).
    this.#errors = new MetricsFactory('connection_pool', poolOptions.registry).counter(
      'errors_total',
      errorsHelp,
      ['pool', 'kind'],
    );
    const url = typeof redis === 'string' ? redis : undefined;
    this.pool = new Pool<Redis>(
      {
        create: async () => {
          const { Redis: RedisClient } = await loadIoredis();
          const settings: RedisOptions = {
            connectTimeout: connectTimeoutMs,
            ...base,
            lazyConnect: true,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          };
          const client = url === undefined ? new RedisClient(settings) : new RedisClient(url, settings);
          // ioredis reports a refused AUTH (WRONGPASS, NOAUTH) as an 'error' event and then
          // rejects connect() with "Connection is closed.": the reason is kept from the event.
          let lastError: unknown;
          client.on('error', (error: unknown) => {
            lastError = error;
          });
          try {
            // ioredis' connectTimeout ends at TCP connect: a frozen server accepts the socket and
            // never answers the ready check, which would hold this create (and a pool slot) for ever.
            await withDeadline(client.connect(), connectTimeoutMs, 'redis connect', () =>
              client.disconnect(),
            );
          } catch (error) {
            client.disconnect();
            const refused = [error, lastError].find(isAuthenticationError);
            if (refused !== undefined) throw new AuthenticationFailedError(poolOptions.name, refused);
            // "Connection is closed." says nothing; the socket's own error (ECONNREFUSED) does.
            throw lastError !== undefined && isConnectionClosed(error) ? lastError : error;
          }
          client.once('end', () => this.pool.invalidate(client));
          this.#trackSession(client);
          // After the handshake, so the ready check keeps connectTimeoutMs.
          if (queryTimeoutMs !== undefined) this.#guardCommands(client, queryTimeoutMs);
          else if (this.#commandTimeoutMs !== undefined || healthCheckIntervalMs !== undefined) {
            this.#watchAnswers(client);
          }
          return client;
        },
        destroy: async (client) => {
          client.disconnect();
        },
        validate: async (client) => (await client.ping()) === 'PONG',
        unref: (client) => socketOf(client)?.unref?.(),
        ref: (client) => socketOf(client)?.ref?.(),
      },
      poolOptions,
    );
    if (healthCheckIntervalMs !== undefined) {
      this.#probeTimer = setInterval(() => void this.#probeOnce(), healthCheckIntervalMs);
      this.#probeTimer.unref();
    }
    this.#healthCheck = new HealthCheckGate(
      this.pool.name,
      async () => {
        await this.#probeOnce();
        return this.health();
      },
      (error) => {
        const stats = this.pool.stats;
        const report = serverReport(this.pool.name, {
          closed: this.#closed,
          healthy: false,
          reason: 'unresponsive',
          error,
          stats,
          now: Date.now(),
        });
        return {
          ...report,
          healthy: false,
          reason: 'unresponsive',
          error: errorText(error),
          errorCode: error.code,
          stats,
        };
      },
      () => (this.#closed ? this.health() : undefined),
    );
  }

  /** Borrows a connection (see `Pool#acquire`). */
  acquire(options?: AcquireOptions): Promise<Redis> {
    return this.pool.acquire(options);
  }

  /**
   * Returns a connection. One given back with session state is reset first, so the next
   * borrower does not inherit it: an open `MULTI` is discarded, keys left `WATCH`ed are
   * unwatched, a `SELECT`ed database is switched back (each command sent now, ahead of anything
   * the next borrower sends on it); one left subscribed, or with a blocking command (`BLPOP`,
   * `XREAD BLOCK`, `WAIT`) or a `SUBSCRIBE` still waiting for its answer, or on which `AUTH`,
   * `HELLO`, `RESET` or `CLIENT REPLY` was sent, is closed instead of reused. Other state
   * (`CLIENT SETNAME`, `CLIENT TRACKING`) stays: `pool.destroy(client)` closes such a connection.
   */
  release(client: Redis): void {
    this.#giveBack(client);
  }

  /**
   * Borrows a connection for `fn` and gives it back as `release()` does. When `fn` throws, the
   * connection is closed instead of reused, whatever the error (the pool cannot tell what state
   * a failure left it in: broken, blocking, inside a transaction), and the error passes through,
   * typed when the connection was lost (`BackendUnavailableError`) or timed out
   * (`QueryTimeoutError`).
   */
  async use<R>(fn: (client: Redis) => Promise<R>, options?: AcquireOptions): Promise<R> {
    const client = await this.pool.acquire(options);
    let result: R;
    try {
      result = await fn(client);
    } catch (error) {
      this.pool.destroy(client);
      const timedOut = this.#timedOut.get(client);
      if (timedOut !== undefined) throw timedOut;
      if (error instanceof Error && error.message === IOREDIS_COMMAND_TIMEOUT) {
        // The answer may still come on that connection: it was closed above, not reused.
        this.#unresponsive = true;
        throw this.#queryTimeout(this.#commandTimeoutMs ?? 0);
      }
      if (client.status !== 'ready' || isConnectionError(error)) {
        // After close() the connection was closed under the command: not an outage.
        if (this.#closed) throw new PoolClosedError(this.pool.name, error);
        throw new BackendUnavailableError(this.pool.name, { cause: error });
      }
      throw error;
    }
    // Not proof the server answers (fn may have sent nothing, or a pipeline's commands may all
    // have timed out): only an answered command clears `unresponsive` (#watchAnswers).
    this.#giveBack(client);
    return result;
  }

  /**
   * Reachability and occupancy. Unhealthy with reason `unresponsive` after a command or probe
   * got no answer within its deadline (until one answers), `down` while connects fail. Only
   * traffic updates it unless `healthCheckIntervalMs` is set. With `down`, `error` and
   * `errorCode` are the error callers get: `NOA_POOL_BACKEND_UNAVAILABLE` (Redis is not
   * reachable) or `NOA_POOL_DRIVER_NOT_INSTALLED` (`ioredis` is missing: nothing was sent).
   * Also a {@link HealthReport}: `down` while unhealthy or once closed, else `up`.
   */
  health(): RedisPoolHealth {
    const stats = this.pool.stats;
    const error = this.#unresponsive ? undefined : this.pool.backendError;
    const reason = this.#unresponsive ? 'unresponsive' : error !== undefined ? 'down' : undefined;
    const report = serverReport(this.pool.name, {
      closed: this.#closed,
      healthy: reason === undefined,
      reason,
      error,
      stats,
      now: Date.now(),
    });
    if (reason === 'unresponsive') return { ...report, healthy: false, reason, stats };
    if (error !== undefined)
      return {
        ...report,
        healthy: false,
        reason: 'down',
        error: errorText(error),
        errorCode: error.code,
        stats,
      };
    return { ...report, healthy: true, stats };
  }

  /**
   * PINGs the server now (on an idle connection, else a new one; deadline `queryTimeoutMs`, else
   * `connectTimeoutMs`; joining a probe in flight), then returns `health()`. For readiness
   * probes: `health()` alone is healthy before the first connect and, without
   * `healthCheckIntervalMs`, stays `down` after an outage until traffic connects. A server back
   * from an outage shows healthy once the connect backoff (at most `maxBackoffMs`) has run out.
   *
   * A probe that gets no connection within its deadline (nothing refused it, nothing answered)
   * leaves the pool `unresponsive`.
   *
   * `options` ({@link CheckHealthOptions}): with no answer within `timeoutMs` (default 500 ms)
   * it reports `down`, reason `unresponsive`, with a `HealthCheckTimeoutError` as `cause`; an
   * answer younger than `maxAgeMs` (default 1 s) is returned again without a PING. Bad options
   * reject with `ConfigError`.
   */
  checkHealth(options?: CheckHealthOptions): Promise<RedisPoolHealth> {
    return this.#healthCheck.check(options);
  }

  #probeOnce(): Promise<void> {
    this.#probing ??= this.#probe().finally(() => {
      this.#probing = undefined;
    });
    return this.#probing;
  }

  /** Closes every connection; reports those never released. */
  async close(): Promise<CloseReport> {
    this.#closed = true;
    clearInterval(this.#probeTimer);
    // Abandoned, the probe hands its connection back at once: waiting for it keeps that
    // connection out of the report without waiting out a frozen server.
    this.#probeAbort?.abort();
    await this.#probing;
    return this.pool.close();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * What `JSON.stringify` shows: the name and the options (`redis` and the deadlines included)
   * with passwords masked (URL passwords, `password`, `sentinelPassword`, TLS keys) and the
   * registry, logger and clock by class name only.
   */
  toJSON(): { name: string; options: unknown } {
    return { name: this.pool.name, options: redactOptions(this.#options) };
  }

  /** What `console.log` / `util.inspect` show: the same as `toJSON()`. */
  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return this.toJSON();
  }

  /**
   * Gives every command sent on `client` a deadline. One that passes it fails everything in
   * flight on the connection with one `QueryTimeoutError` and closes it: the replies, if they
   * ever come, would be out of step with what the caller saw.
   */
  #guardCommands(client: Redis, queryTimeoutMs: number): void {
    const inFlight = new Set<Command>();
    const send = client.sendCommand.bind(client);
    const expire = () => {
      if (inFlight.size === 0) return;
      const error = this.#queryTimeout(queryTimeoutMs);
      this.#timedOut.set(client, error);
      this.#unresponsive = true;
      for (const command of inFlight) command.reject(error);
      inFlight.clear();
      // Before its 'end' event: a raw borrower releasing it now must not make it idle again.
      this.pool.invalidate(client);
      client.disconnect();
    };
    client.sendCommand = (command: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
      const answer = send(command, stream);
      const deadlineMs = commandDeadlineMs(command, queryTimeoutMs);
      if (deadlineMs !== undefined && !command.isResolved) {
        inFlight.add(command);
        const timer = setTimeout(expire, deadlineMs);
        const settle = () => {
          clearTimeout(timer);
          inFlight.delete(command);
        };
        command.promise.then(() => {
          settle();
          this.#unresponsive = false;
        }, settle);
      } else if (deadlineMs === undefined) {
        command.promise.then(this.#answered, () => {});
      }
      return answer;
    };
  }

  /** Notes the WATCH / MULTI state `client`'s borrowers leave (pipelines' commands pass here too). */
  #trackSession(client: Redis): void {
    const state: SessionState = { watching: false, inMulti: false, replaced: false };
    this.#sessions.set(client, state);
    const send = client.sendCommand.bind(client);
    client.sendCommand = (command: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
      if (replacesSession(command)) state.replaced = true;
      switch (command.name.toLowerCase()) {
        case 'watch':
          state.watching = true;
          break;
        case 'multi':
          state.inMulti = true;
          break;
        case 'unwatch':
          state.watching = false;
          break;
        case 'exec':
        case 'discard':
          // Both end the transaction and unwatch every key.
          state.inMulti = false;
          state.watching = false;
          break;
      }
      return send(command, stream);
    };
  }

  /**
   * Returns a lent connection to the pool without the session state its borrower left: reset
   * commands are written before the next borrower's (one connection answers in order), and a
   * connection whose reset failed is closed. Subscriber mode cannot be left in one command that
   * ioredis sees at once, so such a connection is closed.
   */
  #giveBack(client: Redis): void {
    const condition = (client as unknown as { condition?: IoredisCondition }).condition;
    if (condition?.subscriber || this.#sessions.get(client)?.replaced || unsafeCommandWaits(client)) {
      this.pool.destroy(client);
      return;
    }
    // First, so a client that was not lent (NotBorrowedError) gets no command. A waiter it is
    // handed to runs in a later microtask: the resets below are written before its commands.
    this.pool.release(client);
    const state = this.#sessions.get(client);
    const resets: Promise<unknown>[] = [];
    if (state?.inMulti) resets.push(client.discard());
    else if (state?.watching) resets.push(client.unwatch());
    const db = client.options.db ?? 0;
    if (condition?.select !== undefined && condition.select !== db) resets.push(client.select(db));
    for (const reset of resets) {
      // Its state is unknown now: closed when it comes back (at once if idle). A connection
      // that broke is invalidated by its 'end' anyway.
      reset.catch(() => this.pool.invalidate(client));
    }
  }

  /** Any answered command shows the server answers again. */
  readonly #answered = (): void => {
    this.#unresponsive = false;
  };

  /** Clears `unresponsive` when a command on `client` is answered (no deadlines: no queryTimeoutMs). */
  #watchAnswers(client: Redis): void {
    const send = client.sendCommand.bind(client);
    client.sendCommand = (command: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
      const answer = send(command, stream);
      command.promise.then(this.#answered, () => {});
      return answer;
    };
  }

  #queryTimeout(timeoutMs: number): QueryTimeoutError {
    this.#errors.inc({ pool: this.pool.name, kind: 'query_timeout' });
    return new QueryTimeoutError(this.pool.name, timeoutMs);
  }

  /** PINGs one connection with a deadline; a busy pool (nothing free now) skips a round. */
  async #probe(): Promise<void> {
    if (this.#closed || !lendsWithoutWaiting(this.pool)) return;
    const abort = new AbortController();
    this.#probeAbort = abort;
    let client: Redis;
    try {
      client = await this.pool.acquire({ timeoutMs: this.#probeDeadlineMs, signal: abort.signal });
    } catch (error) {
      // Connect failures already show as `down` (backendDown); a busy or drained pool says nothing.
      // The pool could lend at once, so a wait that ran out was for a connect that did not finish
      // within the deadline (or whose outcome a stalled process had not read yet): no answer,
      // which is `unresponsive`, not the `healthy` of a pool that has not connected yet.
      if (error instanceof AcquireTimeoutError && this.pool.backendError === undefined)
        this.#unresponsive = true;
      return;
    }
    let timedOut = false;
    const cut = () => client.disconnect();
    abort.signal.addEventListener('abort', cut, { once: true });
    if (abort.signal.aborted) cut();
    try {
      await withDeadline(client.ping(), this.#probeDeadlineMs, 'redis health probe', () => {
        timedOut = true;
        client.disconnect();
      });
      this.pool.release(client);
      this.#unresponsive = false;
    } catch {
      this.pool.destroy(client);
      // A connection that broke (killed server) shows as `down` once reconnecting fails.
      if (timedOut || this.#timedOut.has(client)) this.#unresponsive = true;
    } finally {
      abort.signal.removeEventListener('abort', cut);
    }
  }
}

/** Creates a {@link RedisPool}. */
export function createRedisPool(options: RedisPoolOptions): RedisPool {
  return new RedisPool(options);
}
