import {
  type Clock,
  childLogger,
  type HealthReport,
  type Logger,
  MetricsFactory,
  maxTimerMs,
  metricLabelValue,
  monotonicClock,
  NoaError,
  parseOptions,
  silentLogger,
  withDeadline,
} from '@noa/core';
import type { Db, MongoClient, MongoClientOptions, ReadPreferenceMode } from 'mongodb';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import {
  badOptions,
  mongoConnectOptionsCheck,
  mongoDbOptionsCheck,
  mongoRunOptionsCheck,
  noteWriteOptionsCheck,
  noteWriteSessionCheck,
  readDbOptionsCheck,
} from './call-options.js';
import { mongoConnectionStringProblem } from './connection-string.js';
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
import { type PoolMetrics, poolMetrics, routedHelp } from './metrics.js';
import type { PoolStats } from './pool.js';
import { timerBoundMessage } from './pool-options.js';
import { redactOptions } from './redact.js';
import { SessionTracker } from './routing/session-tracker.js';

/** Loads the optional `mongodb` peer dependency on first use. */
const loadMongo = lazyPeer<typeof import('mongodb')>('mongodb');

/**
 * Driver options our own options set: one given in `driverOptions` would be silently
 * overwritten, so it is refused, naming the option to use instead.
 */
const ownedDriverOptions: Record<string, string> = {
  minPoolSize: 'min',
  maxPoolSize: 'max',
  waitQueueTimeoutMS: 'acquireTimeoutMs',
  maxIdleTimeMS: 'idleTimeoutMs',
  serverSelectionTimeoutMS: 'serverSelectionTimeoutMs',
  socketTimeoutMS: 'queryTimeoutMs',
};

/** Handed to `run()` callbacks when no deadline is set: it never aborts. */
const neverAborted = new AbortController().signal;

/** Options of {@link createMongoPool}. */
export const mongoPoolOptionsSchema = z
  .object({
    /** Name in logs, the `pool` metric label and the `cluster` label of its routing series. */
    name: z.string().min(1).default('mongo'),
    /** `mongodb://…` connection string (replica set members and options in it as usual). */
    url: z
      .string()
      .regex(/^mongodb(\+srv)?:\/\/./, 'must be a mongodb:// or mongodb+srv:// connection string')
      .superRefine((url, context) => {
        // Another scheme has its own issue (the regex above).
        const problem = /^mongodb(\+srv)?:\/\//i.test(url) ? mongoConnectionStringProblem(url) : undefined;
        if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
        const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
        for (const key of new URLSearchParams(query).keys()) {
          // URI option names are case-insensitive.
          const ours = Object.entries(ownedDriverOptions).find(
            ([name]) => name.toLowerCase() === key.toLowerCase(),
          );
          if (ours !== undefined)
            context.addIssue({ code: 'custom', message: `${key} in the URL: set \`${ours[1]}\` instead` });
        }
      }),
    /** The driver's pool bounds per server. */
    min: z.number().int().nonnegative().default(0),
    max: z.number().int().positive().default(10),
    /** How long an operation waits for a connection (the driver's `waitQueueTimeoutMS`). */
    acquireTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(10_000),
    /** Idle connections above `min` close after this long (`maxIdleTimeMS`). */
    idleTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(30_000),
    /** How long server selection may take before an operation fails (fail fast when down). */
    serverSelectionTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(5_000),
    /**
     * A `run()` call not settled within this long rejects with `QueryTimeoutError`, and an
     * operation waiting this long for the server's answer has its connection closed (the
     * driver's `socketTimeoutMS`, for every operation of the client: keep it above change
     * streams' `maxAwaitTimeMS`). Off by default: without it an operation already sent to a
     * frozen server waits for ever, since the driver sets no socket timeout.
     */
    queryTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).optional(),
    /** Read preference for reads (`readDb`); writes always use the primary. */
    readPreference: z
      .enum(['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest'])
      .default('secondaryPreferred'),
    /** Secondaries further behind than this are not read from (`maxStalenessSeconds`, ≥ 90 per the spec). */
    maxStalenessSeconds: z.number().int().min(90).optional(),
    /** After a write, the session's reads use the primary this long. */
    readYourWritesMs: z.number().int().nonnegative().max(maxTimerMs, timerBoundMessage).default(2_000),
    /** Extra driver options (TLS, auth, appName…). */
    driverOptions: z
      .record(z.string(), z.unknown())
      .superRefine((driverOptions, context) => {
        for (const key of Object.keys(driverOptions)) {
          const ours = ownedDriverOptions[key];
          if (ours !== undefined)
            context.addIssue({ code: 'custom', path: [key], message: `set \`${ours}\` instead` });
        }
      })
      .default({}),
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).optional(),
    clock: z.custom<Clock>((value) => typeof value === 'object' && value !== null).optional(),
    registry: z.custom<Registry>((value) => typeof value === 'object' && value !== null).optional(),
  })
  .strict()
  .refine((options) => options.max >= options.min, { path: ['max'], message: 'max must be >= min' });

/** Options accepted by {@link createMongoPool}. */
export type MongoPoolOptions = z.input<typeof mongoPoolOptionsSchema>;

/** What {@link MongoPool.health} returns: its own fields, and a {@link HealthReport}'s. */
export interface MongoPoolHealth extends HealthReport {
  healthy: boolean;
  /** The failure as text (its `cause` chain under it). */
  error?: string;
  errorCode?: string;
  stats: PoolStats;
  checkoutErrors: number;
}

/**
 * MongoDB through the driver's own connection pool, not a second one on top: this wraps a
 * `MongoClient`, maps our pool options onto the driver's (`maxPoolSize`, `waitQueueTimeoutMS`,
 * `maxIdleTimeMS`), exposes the same occupancy, acquire-time, timeout and error metrics from
 * the driver's CMAP events, and routes reads by read preference with read-your-writes.
 */
export class MongoPool {
  /** The parsed options, defaults applied. */
  readonly options: z.output<typeof mongoPoolOptionsSchema>;
  readonly #metrics: PoolMetrics;
  readonly #routed: { inc(labels: { cluster: string; target: string; reason: string }): void };
  readonly #sessions: SessionTracker;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #client: MongoClient | undefined;
  #connecting: Promise<MongoClient> | undefined;
  #closed = false;
  /** Set once close() has zeroed the gauges: late events of the closed client are ignored. */
  #detached = false;
  #closing: Promise<void> | undefined;
  /** Rejects when `close()` starts, so `run()` calls still waiting on the driver end at once. */
  readonly #closedSignal: Promise<never>;
  #signalClosed: (error: PoolClosedError) => void = () => {};
  #active = 0;
  #open = 0;
  #waiting = 0;
  #errors = 0;
  readonly #healthCheck: HealthCheckGate<MongoPoolHealth>;

  constructor(options: MongoPoolOptions) {
    this.options = parseOptions('mongo pool', mongoPoolOptionsSchema, options);
    this.#metrics = poolMetrics(this.options.registry, this.options.name);
    this.#routed = new MetricsFactory('connection_pool', this.options.registry).counter(
      'routed_queries_total',
      routedHelp,
      ['cluster', 'target', 'reason'],
    );
    this.#sessions = new SessionTracker(this.options.readYourWritesMs);
    this.#clock = this.options.clock ?? monotonicClock;
    this.#logger = childLogger(this.options.logger ?? silentLogger, {
      component: 'connection-pool',
      pool: this.options.name,
    });
    this.#closedSignal = new Promise<never>((_resolve, reject) => {
      this.#signalClosed = reject;
    });
    // Only `run()` listens; a close with no run() pending must not be an unhandled rejection.
    this.#closedSignal.catch(() => {});
    this.#healthCheck = new HealthCheckGate(
      this.options.name,
      () => this.#ping(),
      (error) => ({
        ...serverReport(this.options.name, {
          closed: false,
          healthy: false,
          reason: 'unresponsive',
          error,
          stats: this.stats,
          now: Date.now(),
        }),
        healthy: false,
        error: errorText(error),
        errorCode: error.code,
        stats: this.stats,
        checkoutErrors: this.#errors,
      }),
      () => (this.#closed ? this.#closedHealth() : undefined),
    );
  }

  /**
   * Connects (once; later calls share the first) and returns the underlying client. Rejects
   * with `PoolClosedError` after `close()`: a closed pool is not reopened. A failed connect
   * rejects with the typed errors `run()` throws (`AuthenticationFailedError` for refused
   * credentials, `BackendUnavailableError` when no server answered within
   * `serverSelectionTimeoutMs`), the driver's error as `cause`. Takes no options: one given
   * anyway (`{ timeoutMs }`) rejects with a `ConfigError` naming it, before dialling.
   */
  async connect(options?: Record<string, never>): Promise<MongoClient> {
    if (options !== undefined) {
      const invalid = badOptions(mongoConnectOptionsCheck, options);
      if (invalid !== undefined) throw invalid;
    }
    if (this.#closed) throw new PoolClosedError(this.options.name);
    if (this.#client !== undefined) return this.#client;
    this.#connecting ??= this.#openClient();
    return this.#connecting;
  }

  /**
   * The database for writes and primary reads. Call `connect()` first. Takes no options: one
   * given anyway (`{ readPreference }`) throws a `ConfigError` naming it (use `readDb()`).
   */
  db(name?: string, options?: Record<string, never>): Db {
    if (options !== undefined) {
      const invalid = badOptions(mongoDbOptionsCheck, options);
      if (invalid !== undefined) throw invalid;
    }
    return this.#require().db(name, { readPreference: 'primary' });
  }

  /**
   * The database for reads: the configured read preference (secondaries by default), or the
   * primary while this session is inside its read-your-writes window.
   */
  readDb(name?: string, options: { session?: string | undefined } = {}): Db {
    const invalid = badOptions(readDbOptionsCheck, options);
    if (invalid !== undefined) throw invalid;
    const pinned = this.#sessions.mustReadPrimary(options.session, this.#clock.now());
    const mode: ReadPreferenceMode = pinned ? 'primary' : this.options.readPreference;
    if (this.#metrics.enabled) {
      this.#routed.inc({
        cluster: this.options.name,
        target: metricLabelValue(mode),
        reason: pinned ? 'read_your_writes' : 'read',
      });
    }
    const readPreference =
      !pinned && this.options.maxStalenessSeconds !== undefined && mode !== 'primary'
        ? { mode, maxStalenessSeconds: this.options.maxStalenessSeconds }
        : mode;
    return this.#require().db(name, { readPreference: readPreference as ReadPreferenceMode });
  }

  /**
   * Records a write by `session` (or the current `withSession` context) for read-your-writes.
   * A `session` that is not a string, or any option, throws a `ConfigError` naming it: either
   * would leave the session's reads on the replicas.
   */
  noteWrite(session?: string, options?: Record<string, never>): void {
    if (session !== undefined && typeof session !== 'string') {
      throw badOptions(noteWriteSessionCheck, { session }) as Error;
    }
    if (options !== undefined) {
      const invalid = badOptions(noteWriteOptionsCheck, options);
      if (invalid !== undefined) throw invalid;
    }
    this.#sessions.noteWrite(session, this.#clock.now());
    if (this.#metrics.enabled)
      this.#routed.inc({ cluster: this.options.name, target: 'primary', reason: 'write' });
  }

  /** Runs `fn` as one session for read-your-writes (see `SqlCluster#withSession`). */
  withSession<R>(fn: () => R): R {
    return this.#sessions.run(undefined, fn);
  }

  /**
   * Runs `fn` (which uses `db()` / `readDb()`) and turns the driver's pool failures into this
   * package's typed errors, the driver's error kept as `cause`: no connection free within
   * `acquireTimeoutMs` → `AcquireTimeoutError`; no server within `serverSelectionTimeoutMs`,
   * or the connection lost mid-operation → `BackendUnavailableError`; the pool closed →
   * `PoolClosedError`. Other errors (duplicate key, validation…) pass through unchanged.
   *
   * With `queryTimeoutMs` set, the call rejects with `QueryTimeoutError` once that long has
   * passed, whatever the driver is still doing (waiting on a frozen server, retrying a read on
   * a new connection). `fn` gets an `AbortSignal` that aborts at that moment: pass it to the
   * driver calls (`{ signal }`) so the driver abandons them too instead of finishing in the
   * background.
   *
   * `run()` takes no options: one given anyway (`{ timeoutMs }`, `{ session }`) rejects with a
   * `ConfigError` naming it, before `fn` runs, as the SQL pools' per-call options do.
   */
  async run<R>(fn: (signal: AbortSignal) => Promise<R>, options?: Record<string, never>): Promise<R> {
    if (options !== undefined) {
      const invalid = badOptions(mongoRunOptionsCheck, options);
      if (invalid !== undefined) throw invalid;
    }
    if (this.#closed) throw new PoolClosedError(this.options.name);
    const timeoutMs = this.options.queryTimeoutMs;
    if (timeoutMs === undefined) {
      try {
        // close() rejects callers still queued in the driver at once (as the SQL pools do); the
        // driver's own close settles their operations afterwards.
        return await Promise.race([fn(neverAborted), this.#closedSignal]);
      } catch (error) {
        throw this.#typed(error);
      }
    }
    // The driver's socket timeout alone does not bound the call: a read it retries after the
    // timeout waits again, on a new connection whose handshake the frozen server never answers.
    const controller = new AbortController();
    let timedOut: QueryTimeoutError | undefined;
    try {
      return await withDeadline(
        Promise.race([fn(controller.signal), this.#closedSignal]),
        timeoutMs,
        'mongo run',
        () => {
          timedOut = this.#queryTimeout();
          controller.abort(timedOut);
        },
      );
    } catch (error) {
      throw timedOut ?? this.#typed(error);
    }
  }

  /** Occupancy from the driver's pool events (summed over servers). */
  get stats(): PoolStats {
    const idle = Math.max(0, this.#open - this.#active);
    return { active: this.#active, idle, waiting: this.#waiting, pending: 0, size: this.#open };
  }

  /**
   * Pings the deployment; healthy when it answers in time (`timeoutMs` below; the ping itself
   * gives up after `serverSelectionTimeoutMs`). Unhealthy once closed. `error` is the failure as
   * text with the reasons under it (its `cause` chain, as the SQL pools' `health()` gives it),
   * `errorCode` the code of the error `run()` would throw for it:
   * `NOA_POOL_BACKEND_UNAVAILABLE` (no server reachable, or none answered the ping within
   * `serverSelectionTimeoutMs`: a frozen server), `NOA_POOL_AUTH_FAILED` (the server refused the
   * credentials), `NOA_POOL_DRIVER_NOT_INSTALLED` (`mongodb` is missing: nothing was sent),
   * `NOA_POOL_CLOSED`; undefined for an error `run()` passes through (the driver's own).
   * Also a {@link HealthReport}: `down` while unhealthy, with that error as `cause`, else `up`.
   *
   * `options` ({@link CheckHealthOptions}): concurrent calls share one ping; an answer younger
   * than `maxAgeMs` (default 1 s) is returned again without a ping (readiness endpoints are
   * polled often); with no answer within `timeoutMs` (default 500 ms) it reports unhealthy with
   * a `HealthCheckTimeoutError` (`NOA_POOL_HEALTH_CHECK_TIMEOUT`) while the ping goes on (up to
   * `serverSelectionTimeoutMs`), the next call joining it. Bad options reject with `ConfigError`.
   */
  health(options?: CheckHealthOptions): Promise<MongoPoolHealth> {
    return this.#healthCheck.check(options);
  }

  #closedHealth(): MongoPoolHealth {
    const closed = new PoolClosedError(this.options.name);
    return {
      ...this.#serverReport(false, closed),
      healthy: false,
      error: errorText(closed),
      errorCode: closed.code,
      stats: this.stats,
      checkoutErrors: this.#errors,
    };
  }

  #serverReport(healthy: boolean, error?: unknown): HealthReport {
    return serverReport(this.options.name, {
      closed: this.#closed,
      healthy,
      error,
      stats: this.stats,
      now: Date.now(),
    });
  }

  /** One ping of the deployment, as `health()` reports it. */
  async #ping(): Promise<MongoPoolHealth> {
    const report = (healthy: boolean, error?: unknown) => this.#serverReport(healthy, error);
    // The driver sets no socket timeout, so a frozen or partitioned server would hold the ping
    // forever. An abort signal ends the wait and closes that connection; the per-operation
    // `timeoutMS` did not fire on a socket read here (driver 7.9), so it is not relied on.
    const timeoutMs = this.options.serverSelectionTimeoutMs;
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      await (await this.connect()).db('admin').command({ ping: 1 }, { signal });
      return { ...report(true), healthy: true, stats: this.stats, checkoutErrors: this.#errors };
    } catch (error) {
      let typed = this.#typed(error, false);
      // The ping's own deadline (the driver rejects with the signal's reason, a bare
      // `TimeoutError` DOMException): the server did not answer within serverSelectionTimeoutMs,
      // which is down, as a server selection that times out is.
      if (signal.aborted && !(typed instanceof NoaError))
        typed = new BackendUnavailableError(this.options.name, { cause: error, details: { timeoutMs } });
      const health = {
        ...report(false, typed),
        healthy: false,
        error: errorText(typed),
        stats: this.stats,
        checkoutErrors: this.#errors,
      };
      return typed instanceof NoaError ? { ...health, errorCode: typed.code } : health;
    }
  }

  /**
   * Closes the client and its pool, for good: `run()` calls still pending reject with
   * `PoolClosedError` at once, operations on the wire are interrupted by the driver, and the
   * occupancy gauges drop this pool's connections. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#signalClosed(new PoolClosedError(this.options.name));
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    this.#connecting = undefined;
    await client?.close();
    this.#forgetOccupancy();
  }

  /**
   * The driver stops relaying pool events once its topology is closed, so a checkout that
   * fails during close never reports it: without this the gauges would keep it forever.
   */
  #forgetOccupancy(): void {
    const metrics = this.#metrics;
    for (let n = 0; n < this.#active; n += 1) metrics.active.dec();
    for (let n = 0; n < this.#waiting; n += 1) metrics.waiting.dec();
    for (let n = 0; n < Math.max(0, this.#open - this.#active); n += 1) metrics.idle.dec();
    this.#active = 0;
    this.#waiting = 0;
    this.#open = 0;
    metrics.release();
    this.#detached = true;
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * What `JSON.stringify` shows: the name and the options with passwords masked (in the URL and
   * `password`-like fields of `driverOptions`) and the registry, logger and clock by class name only.
   */
  toJSON(): { name: string; options: unknown } {
    return { name: this.options.name, options: redactOptions(this.options) };
  }

  /** What `console.log` / `util.inspect` show: the same as `toJSON()`. */
  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return this.toJSON();
  }

  #queryTimeout(): QueryTimeoutError {
    this.#metrics.errors.inc({ kind: 'query-timeout' });
    return new QueryTimeoutError(this.options.name, this.options.queryTimeoutMs ?? 0);
  }

  /** The error `run()` throws for `error`; `counted` false leaves the query-timeout metric alone (`health()`). */
  #typed(error: unknown, counted = true): unknown {
    // Already ours (connect() typed it, or the driver package is missing).
    if (error instanceof NoaError) return error;
    const name = this.options.name;
    // Before the other failures: a server selection that timed out because every handshake was
    // refused is a wrong password, not an outage.
    const refused = authenticationFailureIn(error);
    if (refused !== undefined) return new AuthenticationFailedError(name, refused);
    switch (poolFailureOf(error)) {
      case 'query-timeout':
        // Only `queryTimeoutMs` sets a socket timeout on established connections; any other
        // network timeout is an unreachable server, as before it existed.
        if (this.options.queryTimeoutMs === undefined)
          return new BackendUnavailableError(name, { cause: error });
        return counted ? this.#queryTimeout() : new QueryTimeoutError(name, this.options.queryTimeoutMs);
      case 'timeout':
        return new AcquireTimeoutError(name, this.options.acquireTimeoutMs, error);
      case 'unavailable':
        return new BackendUnavailableError(name, { cause: error });
      case 'closed':
        return new PoolClosedError(name, error);
      default:
        return error;
    }
  }

  #require(): MongoClient {
    if (this.#closed) throw new PoolClosedError(this.options.name);
    if (this.#client === undefined) throw new Error('MongoPool: call connect() before db()/readDb()');
    return this.#client;
  }

  async #openClient(): Promise<MongoClient> {
    const { MongoClient: Client } = await loadMongo();
    const options: MongoClientOptions = {
      ...(this.options.driverOptions as MongoClientOptions),
      minPoolSize: this.options.min,
      maxPoolSize: this.options.max,
      waitQueueTimeoutMS: this.options.acquireTimeoutMs,
      maxIdleTimeMS: this.options.idleTimeoutMs,
      serverSelectionTimeoutMS: this.options.serverSelectionTimeoutMs,
    };
    if (this.options.queryTimeoutMs !== undefined) options.socketTimeoutMS = this.options.queryTimeoutMs;
    const client = new Client(this.options.url, options);
    this.#watch(client);
    try {
      await client.connect();
    } catch (error) {
      this.#connecting = undefined;
      await client.close().catch(() => {});
      throw this.#typed(error, false);
    }
    this.#client = client;
    return client;
  }

  /** Mirrors the driver's CMAP events into the pool metrics. */
  #watch(client: MongoClient): void {
    const metrics = this.#metrics;
    client.on('connectionCreated', () => {
      if (this.#detached) return;
      this.#open += 1;
      metrics.created.inc();
      metrics.idle.inc();
    });
    client.on('connectionClosed', () => {
      if (this.#detached) return;
      this.#open = Math.max(0, this.#open - 1);
      metrics.destroyed.inc();
      metrics.idle.dec();
    });
    client.on('connectionCheckOutStarted', () => {
      if (this.#detached) return;
      this.#waiting += 1;
      metrics.waiting.inc();
    });
    client.on('connectionCheckedOut', (event) => {
      if (this.#detached) return;
      this.#waiting = Math.max(0, this.#waiting - 1);
      this.#active += 1;
      metrics.waiting.dec();
      metrics.active.inc();
      metrics.idle.dec();
      metrics.acquireSeconds.observe(event.durationMS / 1_000);
    });
    client.on('connectionCheckOutFailed', (event) => {
      if (this.#detached) return;
      this.#waiting = Math.max(0, this.#waiting - 1);
      this.#errors += 1;
      metrics.waiting.dec();
      if (event.reason === 'timeout') metrics.timeouts.inc();
      else metrics.errors.inc({ kind: `checkout-${event.reason}` });
      this.#logger.warn('mongo connection checkout failed', { reason: event.reason });
    });
    client.on('connectionCheckedIn', () => {
      if (this.#detached) return;
      this.#active = Math.max(0, this.#active - 1);
      metrics.active.dec();
      metrics.idle.inc();
    });
    client.on('connectionPoolCleared', () => {
      if (this.#detached) return;
      metrics.errors.inc({ kind: 'pool-cleared' });
      this.#logger.warn('mongo connection pool cleared (server marked unknown)');
    });
  }
}

const unavailableNames = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoPoolClearedError',
  'PoolClearedOnNetworkError',
]);
const closedNames = new Set([
  'MongoClientClosedError',
  'MongoTopologyClosedError',
  'MongoPoolClosedError',
  'MongoNotConnectedError',
]);

/**
 * Which pool failure a driver error is, if any. Names, not `instanceof`: the wait-queue and
 * pool errors are not exported by the driver. Bulk writes (`insertMany`, `bulkWrite`) wrap the
 * underlying failure in a `MongoBulkWriteError` that keeps it as `errorResponse`, sometimes a
 * bare socket error (`write EPIPE`) the driver did not wrap in a `MongoNetworkError`.
 */
function poolFailureOf(error: unknown): 'query-timeout' | 'timeout' | 'unavailable' | 'closed' | undefined {
  if (!(error instanceof Error)) return undefined;
  const wrapped = (error as { errorResponse?: unknown }).errorResponse;
  const failure = error.name === 'MongoBulkWriteError' && wrapped instanceof Error ? wrapped : error;
  if (failure.name === 'MongoWaitQueueTimeoutError') return 'timeout';
  // A socket timeout after the handshake: the server took the operation and did not answer.
  // One before it (`connectTimeoutMS`) means the server is not reachable.
  if (
    failure.name === 'MongoNetworkTimeoutError' &&
    (failure as { beforeHandshake?: boolean }).beforeHandshake === false
  )
    return 'query-timeout';
  if (unavailableNames.has(failure.name) || isSocketError(failure)) return 'unavailable';
  if (closedNames.has(failure.name)) return 'closed';
  return undefined;
}

/** MongoDB's server error code for refused credentials (`codeName` `AuthenticationFailed`). */
const authenticationFailedCode = 18;

/**
 * The server's refusal of the credentials in `error` or in what it wraps, else undefined. The
 * driver throws it as a `MongoServerError` (code 18) from the handshake of a new connection; a
 * server selection that timed out after such handshakes keeps it as `cause` (and copies its
 * code), a bulk write as `errorResponse`. The innermost is returned: its message is the server's.
 */
function authenticationFailureIn(error: unknown): Error | undefined {
  let found: Error | undefined;
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    const { code, codeName } = current as { code?: unknown; codeName?: unknown };
    if (code === authenticationFailedCode || codeName === 'AuthenticationFailed') found = current;
    const wrapped = (current as { errorResponse?: unknown }).errorResponse;
    current = current.cause ?? (wrapped instanceof Error ? wrapped : undefined);
  }
  return found;
}

/** A Node socket failure (`ECONNRESET`, `EPIPE`…): it carries the failing system call. */
function isSocketError(error: Error): boolean {
  const { code, syscall } = error as { code?: unknown; syscall?: unknown };
  return typeof code === 'string' && typeof syscall === 'string';
}

/** Creates a {@link MongoPool} (call `connect()` before use). */
export function createMongoPool(options: MongoPoolOptions): MongoPool {
  return new MongoPool(options);
}
