import {
  type Clock,
  ConfigError,
  childLogger,
  delay,
  type HealthReport,
  type Logger,
  MetricsFactory,
  maxTimerMs,
  metricLabelValue,
  monotonicClock,
  NoaError,
  parseOptions,
  silentLogger,
  TimeoutError,
  tracingChannel,
  withDeadline,
} from '@noa/core';
import {
  badOptions,
  clusterAcquireOptionsCheck,
  type DrainOptions,
  drainOptionsSchema,
  type QueryOptions,
  queryOptionsCheck,
  type TransactionOptions,
  transactionOptionsSchema,
} from './call-options.js';
import {
  type ClusterOptions,
  clusterOptionsSchema,
  connectionStringIssues,
  type FailoverHandler,
  foreignUrlIssues,
  type ResolvedClusterOptions,
} from './cluster-options.js';
import {
  AuthenticationFailedError,
  BackendUnavailableError,
  DrainTimeoutError,
  errorText,
  type HealthCheckTimeoutError,
  NotBorrowedError,
  PoolClosedError,
  QueryTimeoutError,
  TransactionEndedError,
  TransactionRetryError,
} from './errors.js';
import { type CheckHealthOptions, clusterReport, HealthCheckGate, type ServerState } from './health.js';
import { errorsHelp, type ReplicaMetrics, replicaMetrics, routedHelp } from './metrics.js';
import { type CloseReport, type LeakReport, lendsWithoutWaiting, Pool, type PoolStats } from './pool.js';
import { redactOptions } from './redact.js';
import {
  createStatementClassifier,
  type RouteReason,
  type StatementRoute,
} from './routing/classify-statement.js';
import { ReplicaBalancer } from './routing/replica-balancer.js';
import { SessionTracker } from './routing/session-tracker.js';
import type { SqlDriver, StatementSettings, StatementValues } from './sql-driver.js';

/**
 * A function where `query()` takes values or options: a callback (pg's and mysql2's callback
 * APIs) that would never be called, its result lost. Refused instead.
 */
export function callbackRefused(): ConfigError {
  return new ConfigError('query', [
    { path: 'callback', message: 'this query() returns a promise and takes no callback: await it instead' },
  ]);
}

/** `noa:connection-pool:route` diagnostics channel: one message `{ cluster, target, reason }` per routed query. */
const routeChannel = tracingChannel('connection-pool', 'route');

export type { QueryOptions, TransactionOptions };

/** The handle `withTransaction` passes to its function: every query runs on the transaction's connection. */
export interface Transaction<Conn, Result> {
  /** Runs one statement inside the transaction. */
  query(sql: string, values?: readonly unknown[]): Promise<Result>;
  /** The driver's own connection, for APIs the handle does not wrap (COPY, cursors). */
  readonly connection: Conn;
  /** Which attempt this is (1 for the first run, 2 after one retry…). */
  readonly attempt: number;
}

/** Health of one server as seen by the pool. */
export interface ServerHealth {
  /** `primary`, `replica0`, `replica1`… */
  name: string;
  role: 'primary' | 'replica';
  /** In rotation (replicas) / reachable and answering (primary). */
  healthy: boolean;
  /**
   * Why not: `lag` or `down` (a replica out of rotation; the primary while connects fail), or
   * `unresponsive` (the primary's health probe got no answer in time, until one answers).
   */
  reason: 'lag' | 'down' | 'unresponsive' | undefined;
  /**
   * The error behind `reason` when one is known, as text (with `down`: the error callers get,
   * or the replica's failed health check or frozen read).
   */
  error?: string;
  /**
   * That error's stable code, so a dashboard can tell an outage (`NOA_POOL_BACKEND_UNAVAILABLE`:
   * the server is not reachable) from a deployment mistake (`NOA_POOL_DRIVER_NOT_INSTALLED`:
   * the driver package is missing, nothing was sent) or a frozen server (`NOA_POOL_QUERY_TIMEOUT`,
   * `NOA_TIMEOUT`). Undefined for an error that is not one of Noa's (a driver's own).
   */
  errorCode?: string;
  /** Last measured replication lag (0 for the primary). */
  lagMs: number;
  /** Occupancy of this server's pool. */
  stats: PoolStats;
}

/**
 * Health of the whole cluster; also a {@link HealthReport} (`status`, `component`: the cluster's
 * `name`, `details`, `cause`, `checkedAt`) for `runHealthChecks` in @noa/core.
 */
export interface ClusterHealth extends HealthReport {
  /** The writer. */
  primary: ServerHealth;
  /** The readers, in the order they were configured. */
  replicas: ServerHealth[];
}

class ServerNode<Conn, Config> {
  readonly name: string;
  readonly role: 'primary' | 'replica';
  config: Config;
  pool!: Pool<Conn>;
  healthy = true;
  reason: 'lag' | 'down' | undefined;
  /** Why a replica is `down` (its failed health check or frozen read), for `health()`. */
  downError: unknown;
  lagMs = 0;
  lagStrikes = 0;
  /** The health probe in flight (lag for a replica, ping for the primary), shared by `checkHealth()`. */
  checking: Promise<void> | undefined;
  /** The primary's probe went unanswered past its deadline (cleared by the next answer). */
  unresponsive = false;
  /** The last connect got no answer within `connectTimeoutMs` (frozen), rather than a refusal (gone). */
  connectTimedOut = false;
  /**
   * `performance.now()` of the server's last answer: a lag probe, or a statement while
   * `queryTimeoutMs` is set (monotonic, as the statements' start times it is compared with).
   */
  answeredAt = 0;

  constructor(name: string, role: 'primary' | 'replica', config: Config) {
    this.name = name;
    this.role = role;
    this.config = config;
  }

  get busy(): number {
    const stats = this.pool.stats;
    return stats.active + stats.waiting;
  }
}

/**
 * A pool per server (one primary, any number of replicas) behind one `query()`: reads go to a
 * healthy replica, writes and anything unsure to the primary, with read-your-writes,
 * lag-aware rotation, fail-fast on outages, optional failover, and retried transactions.
 */
export class SqlCluster<Conn, Config, Result> {
  /** The parsed options, defaults applied. */
  readonly options: ResolvedClusterOptions;
  readonly #driver: SqlDriver<Conn, Config, Result>;
  readonly #primary: ServerNode<Conn, Config>;
  readonly #replicas: ServerNode<Conn, Config>[];
  readonly #balancer: ReplicaBalancer<ServerNode<Conn, Config>>;
  readonly #classify: (sql: string) => StatementRoute;
  readonly #sessions: SessionTracker;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #owner = new WeakMap<object, ServerNode<Conn, Config>>();
  readonly #metricsOn: boolean;
  // Routing and replica health are the cluster's: labelled `cluster`, with the server in
  // `target`/`replica`, so they are not read as one server pool's series (whose `pool` label is
  // `<cluster>:<server>`, e.g. `orders:replica0`).
  readonly #routed: { inc(labels: { cluster: string; target: string; reason: string }): void };
  readonly #replicaMetrics: ReplicaMetrics;
  readonly #errors: { inc(labels: { pool: string; kind: string }): void };
  readonly #releasedInTransaction: { inc(labels: { pool: string }): void };
  readonly #failover: FailoverHandler<Config> | undefined;
  #failoverRunning = false;
  #failoverAfter = 0;
  #healthTimer: NodeJS.Timeout | undefined;
  #primaryProbeTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  /** `performance.now()` at the start of each statement in flight, only while `queryTimeoutMs` is set. */
  readonly #running = new Map<Conn, number>();
  /** Connections lent to a health probe (not to a caller), with their server. */
  readonly #probeConns = new Map<Conn, ServerNode<Conn, Config>>();
  /** Connections the watchdog closed, with the start time of the statement that ran too long. */
  readonly #timedOut = new WeakMap<object, number>();
  /** The `tx` handle each connection in `withTransaction` may run statements for, while it runs. */
  readonly #liveTransactions = new Map<Conn, Transaction<Conn, Result>>();
  #closed = false;
  #draining: Promise<void> | undefined;
  readonly #healthCheck: HealthCheckGate<ClusterHealth>;

  constructor(driver: SqlDriver<Conn, Config, Result>, options: ClusterOptions<Config>) {
    this.options = parseOptions(`${driver.name} pool`, clusterOptionsSchema, options);
    const foreign = driver.urlSchemes === undefined ? [] : foreignUrlIssues(this.options, driver.urlSchemes);
    if (foreign.length > 0) throw new ConfigError(`${driver.name} pool`, foreign);
    const unparsable =
      driver.connectionStringProblem === undefined
        ? []
        : connectionStringIssues(this.options, driver.connectionStringProblem, driver.connectionStringOption);
    if (unparsable.length > 0) throw new ConfigError(`${driver.name} pool`, unparsable);
    this.#driver = driver;
    this.#clock = this.options.clock ?? monotonicClock;
    this.#logger = childLogger(this.options.logger ?? silentLogger, {
      component: 'connection-pool',
      pool: this.options.name,
    });
    this.#failover = options.failover;
    // Without replicas every read is on the primary anyway: a zero window skips the per-write bookkeeping.
    this.#sessions = new SessionTracker(this.options.replicas.length > 0 ? this.options.readYourWritesMs : 0);
    this.#classify = createStatementClassifier({
      dialect: driver.dialect,
      extraWriteFunctions: this.options.writeFunctions,
    });
    const metrics = new MetricsFactory('connection_pool', this.options.registry);
    this.#metricsOn = metrics.enabled;
    this.#routed = metrics.counter('routed_queries_total', routedHelp, ['cluster', 'target', 'reason']);
    this.#errors = metrics.counter('errors_total', errorsHelp, ['pool', 'kind']);
    this.#releasedInTransaction = metrics.counter(
      'released_in_transaction_total',
      'Connections given back inside a transaction, rolled back before they were lent again',
      ['pool'],
    );
    this.#replicaMetrics = replicaMetrics(this.options.registry, this.options.name);
    this.#primary = this.#node('primary', 'primary', options.primary);
    this.#replicas = (options.replicas ?? []).map((config, index) =>
      this.#node(`replica${index}`, 'replica', config),
    );
    this.#balancer = new ReplicaBalancer(this.#replicas, this.options.loadBalancing);
    const queryTimeoutMs = this.options.queryTimeoutMs;
    if (queryTimeoutMs !== undefined) {
      this.#watchdog = setInterval(
        () => this.#abortSlowQueries(queryTimeoutMs),
        Math.max(25, Math.min(1_000, queryTimeoutMs / 4)),
      );
      this.#watchdog.unref();
    }
    const primaryProbeMs = this.options.primaryHealthCheckIntervalMs;
    if (primaryProbeMs !== undefined) {
      this.#primaryProbeTimer = setInterval(() => void this.#probePrimary(), primaryProbeMs);
      this.#primaryProbeTimer.unref();
    }
    if (this.#replicas.length > 0) {
      this.#healthTimer = setInterval(() => void this.#checkReplicas(), this.options.healthCheckIntervalMs);
      this.#healthTimer.unref();
      void this.#checkReplicas();
    }
    this.#healthCheck = new HealthCheckGate(
      this.options.name,
      async () => {
        await Promise.all([this.#probePrimary(), this.#checkReplicas()]);
        return this.health();
      },
      (error) => this.#report(error),
      () => (this.#closed ? this.health() : undefined),
    );
  }

  /** Where `sql` would go (ignoring sessions and health): for logs, tests and EXPLAIN-style tooling. */
  route(sql: string): StatementRoute {
    return this.#classify(sql);
  }

  /**
   * Runs one statement: reads on a replica (round robin or least busy, healthy and caught up
   * only), writes, locking reads, writing CTEs, writing functions, hinted statements and reads
   * of a session that just wrote on the primary. A read whose replica fails is retried once on
   * another server. Outages surface as `BackendUnavailableError`.
   */
  query(sql: string, values?: readonly unknown[], options?: QueryOptions): Promise<Result> {
    return this.routeStatement(sql, values, options, undefined);
  }

  /**
   * `query()` with the driver's own per-statement `settings` (see `SqlDriver#query`), for the
   * driver pools' extra forms (`MysqlPool#execute`, `PgPool#query(config)`).
   */
  protected routeStatement(
    sql: string,
    values: StatementValues | undefined,
    options: QueryOptions | undefined,
    settings: StatementSettings | undefined,
  ): Promise<Result> {
    if (typeof values === 'function' || typeof options === 'function')
      return Promise.reject(callbackRefused());
    if (options !== undefined) {
      const invalid = badOptions(queryOptionsCheck, options);
      if (invalid !== undefined) return Promise.reject(invalid);
    }
    const route = this.#classify(sql);
    if (route.target === 'primary' || options?.target === 'primary' || this.#replicas.length === 0) {
      return this.#write(sql, values, options, settings, route.target === 'primary', route.reason);
    }
    const now = this.#clock.now();
    const replicaAsked = options?.target === 'replica' || route.reason === 'hint';
    if (!replicaAsked && this.#sessions.mustReadPrimary(options?.session, now)) {
      return this.#onPrimary(sql, values, options, settings, 'read-your-writes');
    }
    return this.#read(sql, values, options, settings, route.reason);
  }

  /**
   * Runs `fn` in a session: writes inside it keep its reads on the primary for
   * `readYourWritesMs`. Pass a key to share the session across requests (e.g. a user id).
   */
  withSession<R>(fn: () => R): R;
  withSession<R>(key: string, fn: () => R): R;
  withSession<R>(keyOrFn: string | (() => R), fn?: () => R): R {
    if (typeof keyOrFn === 'function') return this.#sessions.run(undefined, keyOrFn);
    return this.#sessions.run(keyOrFn, fn!);
  }

  /**
   * Runs `fn` in a transaction on the primary: COMMIT when it resolves, ROLLBACK when it
   * throws. Errors whose code is in `retryOn` (serialization failure, deadlock, lock wait
   * timeout) re-run `fn` from the start, up to `maxRetries` times, then throw
   * `TransactionRetryError`.
   */
  async withTransaction<R>(
    fn: (tx: Transaction<Conn, Result>) => Promise<R>,
    transactionOptions: TransactionOptions = {},
  ): Promise<R> {
    // Before a connection is taken: a bad option must not reach the server, nor be ignored.
    const options = parseOptions('withTransaction', transactionOptionsSchema, transactionOptions);
    const driver = this.#driver;
    const retryOn = options.retryOn ?? driver.defaultRetryCodes;
    const maxRetries = options.maxRetries ?? this.options.maxTransactionRetries;
    const pool = this.#primary.pool;
    for (let attempt = 1; ; attempt += 1) {
      const conn = await this.#acquire(this.#primary, options.signal);
      let outcome: { ok: true; value: R } | { ok: false; error: unknown; broken: boolean };
      try {
        for (const statement of driver.beginStatements(options.isolation, options.readOnly ?? false)) {
          await this.#run(conn, statement, undefined);
        }
        const handle = this.transactionHandle(conn, attempt);
        this.#liveTransactions.set(conn, handle);
        const value = await fn(handle);
        this.#liveTransactions.delete(conn);
        await this.#run(conn, 'COMMIT', undefined);
        outcome = { ok: true, value };
      } catch (error) {
        this.#liveTransactions.delete(conn);
        let broken = driver.isConnectionError(error) || this.#timedOut.has(conn as object);
        if (!broken) {
          await this.#run(conn, 'ROLLBACK', undefined).catch(() => {
            broken = true;
          });
        }
        outcome = { ok: false, error, broken };
      }
      if (outcome.ok || !outcome.broken) this.#giveBack(this.#primary, conn);
      else pool.destroy(conn);
      if (outcome.ok) {
        if (!options.readOnly) this.#sessions.noteWrite(options.session, this.#clock.now());
        return outcome.value;
      }
      const { error, broken } = outcome;
      if (this.#timedOut.has(conn as object)) throw this.#timeout(this.#primary);
      if (broken) throw this.#lost(this.#primary, error);
      const codes = driver.errorCodes(error);
      if (!codes.some((code) => retryOn.includes(code))) throw error;
      if (attempt > maxRetries) throw new TransactionRetryError(attempt, error);
      this.#logger.debug('retrying transaction', { attempt, codes });
      // Jittered, growing pause so two deadlocked callers do not collide again.
      await delay(Math.round((5 + Math.random() * 20) * attempt), options.signal);
    }
  }

  /**
   * The `tx` that `withTransaction` passes to its function; driver pools extend it with their
   * own forms (`execute`), run through `runInTransaction`.
   */
  protected transactionHandle(conn: Conn, attempt: number): Transaction<Conn, Result> {
    const handle: Transaction<Conn, Result> = {
      query: (sql, values) => {
        if (typeof values === 'function') return Promise.reject(callbackRefused());
        return this.runInTransaction(handle, sql, values, undefined);
      },
      connection: conn,
      attempt,
    };
    return handle;
  }

  /**
   * Runs one statement with the driver's `settings` on a transaction's connection (see
   * `transactionHandle`). Refused with `TransactionEndedError` once `handle`'s transaction has
   * ended: its connection is back in the pool, maybe in another caller's transaction.
   */
  protected runInTransaction(
    handle: Transaction<Conn, Result>,
    sql: string,
    values: StatementValues | undefined,
    settings: StatementSettings | undefined,
  ): Promise<Result> {
    const conn = handle.connection;
    if (this.#liveTransactions.get(conn) !== handle)
      return Promise.reject(new TransactionEndedError(`${this.options.name}:primary`, handle.attempt));
    return this.#run(conn, sql, values, settings);
  }

  /**
   * Borrows a connection for work `query()` cannot express (cursors, COPY, session state).
   * Give it back with `release(conn)`; a broken one with `release(conn, true)`.
   */
  async acquire(
    role: 'primary' | 'replica' = 'primary',
    options?: { signal?: AbortSignal | undefined },
  ): Promise<Conn> {
    if (role !== 'primary' && role !== 'replica') {
      throw new ConfigError('acquire', [{ path: 'role', message: "must be 'primary' or 'replica'" }]);
    }
    const invalid = badOptions(clusterAcquireOptionsCheck, options);
    if (invalid !== undefined) throw invalid;
    const node = role === 'replica' ? (this.#balancer.pick() ?? this.#fallback()) : this.#primary;
    return this.#acquire(node, options?.signal);
  }

  /**
   * Returns a connection from `acquire()`; `broken` closes it instead. A primary connection may
   * have written (the router never saw its statements), so the current session (`withSession`)
   * reads from the primary for `readYourWritesMs` afterwards, as after a routed write.
   */
  release(conn: Conn, broken = false): void {
    const node = this.#owner.get(conn as object);
    if (node === undefined) throw new NotBorrowedError(this.options.name);
    if (broken) node.pool.destroy(conn);
    else this.#giveBack(node, conn);
    if (node === this.#primary) this.#sessions.noteWrite(undefined, this.#clock.now());
  }

  /**
   * Health, lag and occupancy of every server, from what traffic and the periodic probes last saw
   * (no I/O). As a {@link HealthReport}: `down` once closed or while the primary is down or
   * unresponsive, and while no replica is in rotation with `replicaFallback: 'error'`;
   * `degraded` while a replica is out of rotation; else `up`.
   */
  health(): ClusterHealth {
    return this.#report(undefined);
  }

  /**
   * `health()`, with every server whose probe is still in flight `unresponsive`, `overdue` the
   * error behind it (a `checkHealth()` that ran out of time).
   */
  #report(overdue: HealthCheckTimeoutError | undefined): ClusterHealth {
    const primaryReason = (node: ServerNode<Conn, Config>) =>
      node.unresponsive ? 'unresponsive' : node.pool.backendDown ? 'down' : undefined;
    const view = (node: ServerNode<Conn, Config>): ServerHealth => {
      const late = overdue !== undefined && node.checking !== undefined;
      const reason = late ? 'unresponsive' : node.role === 'primary' ? primaryReason(node) : node.reason;
      const health: ServerHealth = {
        name: node.name,
        role: node.role,
        healthy: late ? false : node.role === 'primary' ? reason === undefined : node.healthy,
        reason,
        lagMs: node.lagMs,
        stats: node.pool.stats,
      };
      // A connect failing now says more than an older failed probe.
      const error = late
        ? overdue
        : reason === 'down'
          ? (node.pool.backendError ?? node.downError)
          : undefined;
      if (error !== undefined) {
        health.error = errorText(error);
        if (error instanceof NoaError) health.errorCode = error.code;
      }
      states.push({ healthy: health.healthy, reason, error });
      return health;
    };
    const states: ServerState[] = [];
    const primary = view(this.#primary);
    const replicas = this.#replicas.map(view);
    const report = clusterReport(this.options.name, {
      closed: this.#closed,
      primary: states[0]!,
      replicas: states.slice(1),
      replicaFallback: this.options.replicaFallback,
      now: Date.now(),
    });
    return { ...report, primary, replicas };
  }

  /**
   * Asks the servers now instead of reporting what traffic and the periodic probes last saw,
   * then returns `health()`: a ping of the primary (on an idle connection, else a new one; deadline
   * `queryTimeoutMs`, else `connectTimeoutMs`) and a lag probe of each replica, joining a probe
   * already in flight. For readiness probes: `health()` alone is optimistic before the first
   * connect (nothing has failed yet) and, without `primaryHealthCheckIntervalMs`, stays `down`
   * after an outage until traffic connects. A server back from an outage shows healthy once the
   * pool's connect backoff (at most `pool.maxBackoffMs`) has run out; a primary whose every
   * connection is busy is not pinged (its traffic is the check).
   *
   * `options` ({@link CheckHealthOptions}): a server whose probe has not answered within
   * `timeoutMs` (default 500 ms) is reported `unresponsive` with a `HealthCheckTimeoutError`
   * (the primary: the cluster is `down`; a replica: out of rotation in the report, `degraded`);
   * an answer younger than `maxAgeMs` (default 1 s) is returned again without probing. Bad
   * options reject with `ConfigError`.
   */
  checkHealth(options?: CheckHealthOptions): Promise<ClusterHealth> {
    return this.#healthCheck.check(options);
  }

  /**
   * The connections of every server held past `pool.leakDetectionThresholdMs` (all lent ones
   * when it is not set), with the stack of their acquire when it is.
   */
  leaks(): LeakReport[] {
    return [this.#primary, ...this.#replicas].flatMap((node) => node.pool.leaks());
  }

  /**
   * Graceful shutdown: new queries are refused (`PoolClosedError`), queued and running ones
   * finish, then every connection is closed. The wait is bounded by `timeoutMs` (default
   * `pool.closeTimeoutMs`): connections still lent then (never released) are closed and the
   * drain rejects with `DrainTimeoutError` listing them, over all servers. Every call shares
   * the first call's drain.
   */
  drain(options?: DrainOptions): Promise<void> {
    if (this.#draining === undefined) {
      if (options !== undefined) {
        try {
          parseOptions('drain', drainOptionsSchema, options);
        } catch (error) {
          return Promise.reject(error);
        }
      }
      this.#draining = this.#drain(options);
    }
    return this.#draining;
  }

  async #drain(options: DrainOptions | undefined): Promise<void> {
    this.#closed = true;
    clearInterval(this.#healthTimer);
    clearInterval(this.#primaryProbeTimer);
    // No more probes: this cluster's replica values would go stale, so they leave the series.
    this.#replicaMetrics.release();
    // The watchdog outlives the wait: the statements drain() waits for keep their deadline.
    const outcomes = await Promise.allSettled(
      [this.#primary, ...this.#replicas].map((node) => node.pool.drain(options)),
    );
    clearInterval(this.#watchdog);
    const failures = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    const timeouts = failures.filter((failure) => failure instanceof DrainTimeoutError);
    if (failures.length > timeouts.length)
      throw failures.find((failure) => !(failure instanceof DrainTimeoutError));
    if (timeouts.length > 0) {
      throw new DrainTimeoutError(
        this.options.name,
        options?.timeoutMs ?? this.options.pool.closeTimeoutMs,
        timeouts.flatMap((timeout) => timeout.unreleased),
      );
    }
  }

  /** Rejects waiters and closes every server's pool; reports connections never released. */
  async close(): Promise<CloseReport> {
    this.#closed = true;
    clearInterval(this.#healthTimer);
    clearInterval(this.#primaryProbeTimer);
    clearInterval(this.#watchdog);
    this.#replicaMetrics.release();
    // A probe's connection is not a caller's: dropped at once (its server may be frozen), not
    // reported unreleased.
    for (const [conn, node] of this.#probeConns) {
      this.#probeConns.delete(conn);
      this.#driver.abort(conn);
      node.pool.destroy(conn);
    }
    const reports = await Promise.all([this.#primary, ...this.#replicas].map((node) => node.pool.close()));
    return { unreleased: reports.flatMap((report) => report.unreleased) };
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * What `JSON.stringify` shows: the name and the options with passwords masked (in URLs and
   * `password`-like fields) and the registry, logger and clock by class name only.
   */
  toJSON(): { name: string; options: unknown } {
    return { name: this.options.name, options: redactOptions(this.options) };
  }

  /** What `console.log` / `util.inspect` show: the same as `toJSON()`. */
  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return this.toJSON();
  }

  // ---- internals ----

  #node(name: string, role: 'primary' | 'replica', config: Config): ServerNode<Conn, Config> {
    const node = new ServerNode<Conn, Config>(name, role, config);
    const driver = this.#driver;
    node.pool = new Pool<Conn>(
      {
        create: () => this.#connect(node),
        // A goodbye a frozen server never answers must not hang eviction or close(): after
        // connectTimeoutMs the socket is dropped instead.
        destroy: (conn) =>
          withDeadline(driver.close(conn), this.options.connectTimeoutMs, 'close a connection', () =>
            driver.abort(conn),
          ).catch(() => {}),
        abort: (conn) => driver.abort(conn),
        unref: (conn) => driver.unref?.(conn),
        ref: (conn) => driver.ref?.(conn),
        validate: (conn) =>
          driver.ping(conn).then(
            () => true,
            () => false,
          ),
      },
      {
        ...this.options.pool,
        name: `${this.options.name}:${name}`,
        logger: this.options.logger,
        clock: this.options.clock,
        registry: this.options.registry,
      },
    );
    if (role === 'replica') this.#replicaMetrics.inRotation(name, true);
    return node;
  }

  /**
   * Opens a connection to `node`'s server. A failover during the connect (the config changed)
   * makes its outcome stale: a connection the old primary answers late is dropped (writes on it
   * would split the brain), a connect it fails says nothing of the new one, so both retry on it.
   */
  async #connect(node: ServerNode<Conn, Config>): Promise<Conn> {
    const driver = this.#driver;
    for (;;) {
      const config = node.config;
      let conn: Conn | undefined;
      let brokenEarly = false;
      const startedAt = performance.now();
      let created: Conn;
      try {
        created = await driver.connect({
          config,
          connectTimeoutMs: this.options.connectTimeoutMs,
          statementCacheSize: this.options.statementCacheSize,
          onBroken: (error) => {
            this.#logger.debug('connection broke', { server: node.name, error: String(error) });
            if (conn === undefined) brokenEarly = true;
            else node.pool.invalidate(conn);
          },
        });
      } catch (error) {
        if (node.config !== config && !this.#closed) continue;
        // Drivers word their connect timeouts differently; the time taken does not vary.
        node.connectTimedOut = performance.now() - startedAt >= this.options.connectTimeoutMs;
        if (driver.isAuthenticationError?.(error))
          throw new AuthenticationFailedError(`${this.options.name}:${node.name}`, error);
        throw error;
      }
      if (node.config !== config && !this.#closed) {
        driver.abort(created);
        continue;
      }
      node.connectTimedOut = false;
      conn = created;
      this.#owner.set(created as object, node);
      if (brokenEarly) queueMicrotask(() => node.pool.invalidate(created));
      return created;
    }
  }

  async #acquire(node: ServerNode<Conn, Config>, signal: AbortSignal | undefined): Promise<Conn> {
    try {
      return await node.pool.acquire(signal === undefined ? undefined : { signal });
    } catch (error) {
      if (error instanceof BackendUnavailableError) this.#serverDown(node, error);
      // Refused credentials are no outage to fail over from; a replica leaves rotation all the same.
      else if (error instanceof AuthenticationFailedError && node.role === 'replica')
        this.#markReplica(node, false, 'down', error);
      throw error;
    }
  }

  /** A server did not answer: the primary may fail over, a replica leaves rotation. */
  #serverDown(node: ServerNode<Conn, Config>, error: BackendUnavailableError): void {
    if (node === this.#primary) this.#maybeFailover(error);
    else this.#markReplica(node, false, 'down', error);
  }

  #count(target: string, reason: RouteReason | 'read-your-writes' | 'fallback' | 'retry'): void {
    if (this.#metricsOn)
      this.#routed.inc({ cluster: this.options.name, target, reason: metricLabelValue(reason) });
    if (routeChannel.hasSubscribers) routeChannel.publish({ cluster: this.options.name, target, reason });
  }

  #write(
    sql: string,
    values: StatementValues | undefined,
    options: QueryOptions | undefined,
    settings: StatementSettings | undefined,
    isWrite: boolean,
    reason: RouteReason,
  ): Promise<Result> {
    if (isWrite) this.#sessions.noteWrite(options?.session, this.#clock.now());
    return this.#onPrimary(sql, values, options, settings, reason);
  }

  #onPrimary(
    sql: string,
    values: StatementValues | undefined,
    options: QueryOptions | undefined,
    settings: StatementSettings | undefined,
    reason: RouteReason | 'read-your-writes' | 'fallback',
  ): Promise<Result> {
    this.#count('primary', reason);
    return this.#exec(this.#primary, sql, values, settings, options?.signal);
  }

  async #read(
    sql: string,
    values: StatementValues | undefined,
    options: QueryOptions | undefined,
    settings: StatementSettings | undefined,
    reason: RouteReason,
  ): Promise<Result> {
    const replica = this.#balancer.pick();
    if (replica === undefined) return this.#onPrimary(sql, values, options, settings, this.#fallbackReason());
    this.#count(replica.name, reason);
    try {
      return await this.#exec(replica, sql, values, settings, options?.signal);
    } catch (error) {
      // A timeout is retried only when #exec judged the replica frozen (and took it out of
      // rotation); a read that is merely slow would be as slow elsewhere, and on the primary.
      const frozen = error instanceof QueryTimeoutError && replica.reason === 'down';
      const refused = error instanceof AuthenticationFailedError;
      if (!(error instanceof BackendUnavailableError) && !frozen && !refused) throw error;
      // A read is safe to repeat: try another replica, else the primary.
      const next = this.#balancer.pick(replica);
      if (next === undefined) return this.#onPrimary(sql, values, options, settings, this.#fallbackReason());
      this.#count(next.name, 'retry');
      return this.#exec(next, sql, values, settings, options?.signal);
    }
  }

  #fallbackReason(): 'fallback' {
    if (this.options.replicaFallback === 'error') {
      throw new BackendUnavailableError(`${this.options.name}:replicas`, {
        details: { reason: 'no replica in rotation' },
      });
    }
    return 'fallback';
  }

  #fallback(): ServerNode<Conn, Config> {
    this.#fallbackReason();
    return this.#primary;
  }

  async #exec(
    node: ServerNode<Conn, Config>,
    sql: string,
    values: StatementValues | undefined,
    settings: StatementSettings | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Result> {
    const conn = await this.#acquire(node, signal);
    let result: Result;
    try {
      result = await this.#run(conn, sql, values, settings);
    } catch (error) {
      const startedAt = this.#timedOut.get(conn as object);
      if (startedAt !== undefined) {
        node.pool.destroy(conn);
        // Nothing else (statement or health probe) answered on that replica since this one was
        // sent: it is frozen, not slow. Out of rotation until a health check answers again.
        const timeout = this.#timeout(node);
        if (node.role === 'replica' && node.answeredAt <= startedAt)
          this.#markReplica(node, false, 'down', timeout);
        throw timeout;
      }
      if (this.#driver.isConnectionError(error)) {
        node.pool.destroy(conn);
        throw this.#lost(node, error);
      }
      this.#giveBack(node, conn);
      throw error;
    }
    this.#giveBack(node, conn);
    return result;
  }

  /**
   * Returns a caller's connection to its pool. One still inside a transaction (a `BEGIN` through
   * `query()`, a borrowed client given back without COMMIT or ROLLBACK, or after an error in its
   * transaction) is rolled back, and one with a statement of the driver's own still running (pg:
   * a DEALLOCATE) waits for it: the pool lends it to no one before that has settled (lent at
   * once, the next borrower's statements queued behind it: two sent at once made pg 8 warn
   * "already executing a query", and one sent behind a failing ROLLBACK ran in the transaction
   * left open), and closes it when the ROLLBACK fails. A connection that came back clean, the
   * common case, goes back at once: both checks are local reads, no round trip. The pool checks
   * the connection is lent before it calls the reset, so a connection not lent gets nothing.
   * One that can take no more statements (ended by its borrower) is closed instead.
   */
  #giveBack(node: ServerNode<Conn, Config>, conn: Conn): void {
    // Ended by its borrower (client.end()), or failed: lent on, it would fail the next caller's
    // statement as if the server were down.
    if (this.#driver.unusable?.(conn) === true) {
      node.pool.destroy(conn);
      return;
    }
    const rollback = this.#driver.inTransaction?.(conn) === true;
    const running = this.#driver.pendingWork?.(conn);
    if (!rollback && running === undefined) {
      node.pool.release(conn);
      return;
    }
    node.pool.release(conn, () => this.#reset(node, conn, rollback, running));
  }

  /** The reset of a connection given back (see #giveBack): its driver's own work, then a ROLLBACK. */
  #reset(
    node: ServerNode<Conn, Config>,
    conn: Conn,
    rollback: boolean,
    running: Promise<void> | undefined,
  ): Promise<unknown> {
    if (!rollback) return running!;
    const pool = `${this.options.name}:${node.name}`;
    this.#releasedInTransaction.inc({ pool });
    this.#logger.debug('connection given back inside a transaction: rolling it back', { server: node.name });
    // After the driver's own statement, so the two are never queued on the connection together;
    // through #run, so that with queryTimeoutMs a ROLLBACK a frozen server never answers closes
    // the connection instead of holding its slot.
    const send = () => this.#run(conn, 'ROLLBACK', undefined);
    return running === undefined ? send() : running.then(send);
  }

  /** Runs one statement, tracked by the query watchdog when `queryTimeoutMs` is set. */
  #run(
    conn: Conn,
    sql: string,
    values: StatementValues | undefined,
    settings?: StatementSettings,
  ): Promise<Result> {
    if (this.#watchdog === undefined) return this.#driver.query(conn, sql, values, settings);
    this.#running.set(conn, performance.now());
    return this.#driver.query(conn, sql, values, settings).then(
      (result) => {
        this.#running.delete(conn);
        const node = this.#owner.get(conn as object);
        if (node !== undefined) node.answeredAt = performance.now();
        return result;
      },
      (error: unknown) => {
        this.#running.delete(conn);
        throw error;
      },
    );
  }

  /**
   * Closes the connections whose statement has run past `queryTimeoutMs`. Timed on the monotonic
   * clock, as the acquire deadlines are: on `Date.now()` a wall clock stepped forward (NTP, a VM
   * resumed) abandoned every statement in flight, and one stepped back let a statement on a frozen
   * server run past its deadline by the size of the step.
   */
  #abortSlowQueries(timeoutMs: number): void {
    const now = performance.now();
    for (const [conn, startedAt] of this.#running) {
      if (now - startedAt < timeoutMs) continue;
      this.#running.delete(conn);
      this.#timedOut.set(conn as object, startedAt);
      this.#logger.warn('query exceeded queryTimeoutMs; closing its connection', { timeoutMs });
      this.#driver.abort(conn);
    }
  }

  #timeout(node: ServerNode<Conn, Config>): QueryTimeoutError {
    this.#errors.inc({ pool: `${this.options.name}:${node.name}`, kind: 'query_timeout' });
    return new QueryTimeoutError(`${this.options.name}:${node.name}`, this.options.queryTimeoutMs ?? 0);
  }

  /** A connection broke under a statement: the server went away, or close() closed it. */
  #lost(node: ServerNode<Conn, Config>, error: unknown): BackendUnavailableError | PoolClosedError {
    if (this.#closed) return new PoolClosedError(`${this.options.name}:${node.name}`, error);
    return this.#unavailable(node, error);
  }

  #unavailable(node: ServerNode<Conn, Config>, error: unknown): BackendUnavailableError {
    const wrapped = new BackendUnavailableError(`${this.options.name}:${node.name}`, { cause: error });
    this.#errors.inc({ pool: `${this.options.name}:${node.name}`, kind: 'query_connection' });
    this.#serverDown(node, wrapped);
    return wrapped;
  }

  #markReplica(
    node: ServerNode<Conn, Config>,
    healthy: boolean,
    reason: 'lag' | 'down' | undefined,
    error?: unknown,
  ): void {
    node.downError = reason === 'down' ? error : undefined;
    if (node.healthy !== healthy) {
      const fields = { replica: node.name, reason, lagMs: node.lagMs };
      if (healthy) this.#logger.info('replica back in rotation', fields);
      else this.#logger.warn('replica left rotation', fields);
    }
    node.healthy = healthy;
    node.reason = healthy ? undefined : reason;
    this.#replicaMetrics.inRotation(node.name, healthy);
    // An unreachable replica's lag is not known: its last value would be stale.
    if (reason === 'down') this.#replicaMetrics.lagSeconds(node.name, undefined);
  }

  /** Measures each replica's lag; out of rotation above `maxReplicaLagMs` or when unreachable. */
  async #checkReplicas(): Promise<void> {
    await Promise.all(this.#replicas.map((node) => this.#checkReplica(node)));
  }

  #checkReplica(node: ServerNode<Conn, Config>): Promise<void> {
    if (node.checking !== undefined) return node.checking;
    if (this.#closed) return Promise.resolve();
    node.checking = this.#measureLag(node)
      .then(
        (lagMs) => {
          node.lagMs = lagMs;
          node.answeredAt = performance.now();
          // Infinity (replication stopped) is not a lag: the series goes away until one is measured.
          this.#replicaMetrics.lagSeconds(node.name, Number.isFinite(lagMs) ? lagMs / 1_000 : undefined);
          // Two probes in a row over the bound: a probe that lands between a WAL record's
          // arrival and its replay after a quiet spell sees the age of the previous
          // transaction, not real lag, and must not flap the replica out.
          const behind = lagMs > this.options.maxReplicaLagMs;
          node.lagStrikes = behind ? node.lagStrikes + 1 : 0;
          if (!behind) this.#markReplica(node, true, undefined);
          else if (node.lagStrikes >= 2 || !node.healthy) this.#markReplica(node, false, 'lag');
        },
        (error: unknown) => {
          // close() cut the probe short: that says nothing about the replica.
          if (this.#closed) return;
          this.#logger.debug('replica health check failed', { replica: node.name, error: String(error) });
          this.#markReplica(node, false, 'down', error);
        },
      )
      .finally(() => {
        node.checking = undefined;
      });
    return node.checking;
  }

  /**
   * One lag probe with a deadline: a frozen replica (accepting TCP, answering nothing) must
   * leave rotation too, so a probe that does not answer in time closes its connection.
   */
  #measureLag(node: ServerNode<Conn, Config>): Promise<number> {
    const deadlineMs = Math.min(
      maxTimerMs,
      this.options.healthCheckIntervalMs * 2 + this.options.connectTimeoutMs,
    );
    return this.#probe(node, deadlineMs, 'replica lag probe', (conn) => this.#driver.replicationLagMs(conn));
  }

  /**
   * Pings the primary with a deadline. An unanswered ping or connect marks it `unresponsive`; a
   * refused connect already shows as `down` (and may fail over, as traffic's would), and a pool
   * with every connection busy skips the round, its traffic being the check.
   */
  #probePrimary(): Promise<void> {
    const node = this.#primary;
    if (node.checking !== undefined) return node.checking;
    if (this.#closed || !lendsWithoutWaiting(node.pool)) return Promise.resolve();
    const deadlineMs = this.options.queryTimeoutMs ?? this.options.connectTimeoutMs;
    node.checking = this.#ping(node, deadlineMs)
      .then(
        () => {
          node.unresponsive = false;
        },
        (error: unknown) => {
          // A connect the server never answered is the same silence as an unanswered ping: a
          // frozen primary must not be failed over (slow is not gone), only a refusing one.
          const silent =
            error instanceof TimeoutError ||
            (error instanceof BackendUnavailableError && node.connectTimedOut);
          if (silent) {
            if (!node.unresponsive)
              this.#logger.warn('primary did not answer its health probe', { deadlineMs });
            node.unresponsive = true;
          } else if (error instanceof BackendUnavailableError) {
            this.#serverDown(node, error);
          }
        },
      )
      .finally(() => {
        node.checking = undefined;
      });
    return node.checking;
  }

  #ping(node: ServerNode<Conn, Config>, deadlineMs: number): Promise<void> {
    return this.#probe(node, deadlineMs, 'primary health probe', (conn) => this.#driver.ping(conn));
  }

  /**
   * Runs a health probe's `work` on a connection of `node` with a deadline; one that does not
   * answer in time is closed. The connection is listed in #probeConns while lent, so close()
   * can take it back without reporting it as a caller's.
   */
  async #probe<T>(
    node: ServerNode<Conn, Config>,
    deadlineMs: number,
    operation: string,
    work: (conn: Conn) => Promise<T>,
  ): Promise<T> {
    const conn = await node.pool.acquire({ timeoutMs: deadlineMs });
    this.#probeConns.set(conn, node);
    const giveBack = (broken: boolean) => {
      // close() may have taken it already.
      if (!this.#probeConns.delete(conn)) return;
      if (broken) node.pool.destroy(conn);
      else node.pool.release(conn);
    };
    try {
      const answer = await withDeadline(work(conn), deadlineMs, operation, () => giveBack(true));
      giveBack(false);
      return answer;
    } catch (error) {
      giveBack(true);
      throw error;
    }
  }

  /** Asks the failover callback for a new primary (one call at a time, at most once a second). */
  #maybeFailover(error: unknown): void {
    const handler = this.#failover;
    if (handler === undefined || this.#failoverRunning || this.#closed) return;
    const now = this.#clock.now();
    if (now < this.#failoverAfter) return;
    this.#failoverRunning = true;
    this.#failoverAfter = now + 1_000;
    Promise.resolve()
      .then(() => handler({ lastError: error, current: this.#primary.config }))
      .then(
        (next) => {
          if (next === undefined || this.#closed) return;
          this.#logger.warn('failing over to a new primary');
          this.#primary.config = next;
          this.#primary.pool.invalidateAll();
        },
        (failure: unknown) => this.#logger.error('failover callback failed', { error: String(failure) }),
      )
      .finally(() => {
        this.#failoverRunning = false;
      });
  }
}
