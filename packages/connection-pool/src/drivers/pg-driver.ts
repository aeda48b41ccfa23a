import type { Client, ClientConfig, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { pgConnectionStringProblem } from '../connection-string.js';
import { lazyPeer } from '../lazy-peer.js';
import {
  type ConnectSettings,
  type IsolationLevel,
  isolationLevelSql,
  keepAliveInitialDelayMs,
  type SqlDriver,
  type StatementSettings,
  type StatementValues,
} from '../sql-driver.js';
import { StatementCache } from '../statement-cache.js';

/** How to reach one Postgres server: a connection string or a `pg` ClientConfig. */
export type PgConnectionConfig = string | ClientConfig;

/** Loads the optional `pg` peer dependency on first use. */
const loadPg = lazyPeer<typeof import('pg')>('pg');

interface PgInternals {
  connection?: { parsedStatements?: Record<string, string> };
}

const statementCaches = new WeakMap<Client, StatementCache>();

/**
 * Statements a client's cache evicted, to be dropped on the server once the statement that
 * evicted them has settled (see {@link dropEvicted}).
 */
const evictedNames = new WeakMap<Client, string[]>();

/**
 * Drops the statements `client`'s cache evicted, in one simple-protocol query sent after the
 * statement that evicted them settled, when the client has nothing of ours queued. Sent before
 * it instead, the `DEALLOCATE` and the statement were two queries queued on one client whenever
 * something ran ahead of them (the `ROLLBACK` of a connection given back inside a transaction):
 * pg 8 warns of that ("already executing a query") and says pg 9 removes it. While it runs it is
 * the driver's `pendingWork`: a client given back meanwhile is lent on once it settled. Never
 * reused names (see `StatementCache`), so the drop is only hygiene: failures are ignored. Only
 * names the server parsed are dropped (see the cache's eviction callback): inside a transaction,
 * a failed drop would abort the caller's transaction.
 */
function dropEvicted(client: Client): void {
  const names = evictedNames.get(client);
  if (names === undefined || names.length === 0) return;
  evictedNames.delete(client);
  const drop: Promise<void> = client.query(names.map((name) => `DEALLOCATE ${name}`).join('; ')).then(
    () => forgetDrop(client, drop),
    () => forgetDrop(client, drop),
  );
  runningDrops.set(client, drop);
}

/**
 * The DEALLOCATE each client has running (see {@link dropEvicted}): `pgDriver.pendingWork`, so
 * the cluster lends the client on only once it has settled.
 */
const runningDrops = new WeakMap<Client, Promise<void>>();

function forgetDrop(client: Client, drop: Promise<void>): void {
  if (runningDrops.get(client) === drop) runningDrops.delete(client);
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08001',
  '08003',
  '08006',
]);

/** invalid_sql_statement_name: the server no longer has a statement the client thought prepared. */
const STATEMENT_MISSING = '26000';

/**
 * Runs a statement named from `cache`. When the server has lost the connection's prepared
 * statements (a `DEALLOCATE ALL` or `DISCARD ALL` sent through the pool), `pg` still believes
 * them parsed and sends only Bind, which fails with 26000 on every cached statement: the cache is
 * forgotten so they are parsed again under new names, and the statement, which did not run, is
 * sent once more unless the failure aborted a transaction.
 */
function runNamed(
  client: Client,
  cache: StatementCache,
  config: QueryConfig,
): Promise<QueryResult<QueryResultRow>> {
  return client.query(config).catch((error: unknown) => {
    if ((error as { code?: unknown } | null)?.code !== STATEMENT_MISSING) throw error;
    const parsed = (client as unknown as PgInternals).connection?.parsedStatements;
    for (const name of cache.forgetAll()) if (parsed) delete parsed[name];
    if (pgDriver.inTransaction?.(client) === true) throw error;
    return client.query({ ...config, name: cache.nameFor(config.text) });
  });
}

/** Sends one statement as `pgDriver.query` takes it, named from the client's cache when it has values. */
function sendStatement(
  client: Client,
  sql: string,
  statementValues: StatementValues | undefined,
  settings: StatementSettings | undefined,
): Promise<QueryResult<QueryResultRow>> {
  // pg has positional parameters only, and PgPool's types take lists only: anything else
  // reaches pg as it came, as it would from pg.Pool.
  const values = statementValues as readonly unknown[] | undefined;
  if (settings !== undefined) {
    // A QueryConfig's own settings (rowMode, types, a name of the caller's): its name wins,
    // else a parameterized one is named from the cache like any other.
    const cache = values !== undefined && values.length > 0 ? statementCaches.get(client) : undefined;
    const config = { ...settings, text: sql, values: values as unknown[] | undefined } as QueryConfig;
    if (config.name === undefined && cache !== undefined) {
      config.name = cache.nameFor(sql);
      return runNamed(client, cache, config);
    }
    return client.query(config);
  }
  if (values !== undefined && values.length > 0) {
    const cache = statementCaches.get(client);
    if (cache !== undefined) {
      return runNamed(client, cache, { name: cache.nameFor(sql), text: sql, values: values as unknown[] });
    }
    return client.query(sql, values as unknown[]);
  }
  return client.query(sql);
}

/**
 * Driver for `pg` (node-postgres): named prepared statements with a bounded per-connection LRU.
 * Its `settings` are a `QueryConfig`'s other fields (`rowMode`, `types`, `name`).
 */
export const pgDriver: SqlDriver<Client, PgConnectionConfig, QueryResult<QueryResultRow>> = {
  name: 'pg',
  dialect: 'postgres',
  defaultRetryCodes: ['40001', '40P01'],
  urlSchemes: ['postgres', 'postgresql', 'socket'],
  connectionStringProblem: pgConnectionStringProblem,
  connectionStringOption: 'connectionString',

  async connect(settings: ConnectSettings<PgConnectionConfig>): Promise<Client> {
    const pg = await loadPg();
    const base: ClientConfig =
      typeof settings.config === 'string' ? { connectionString: settings.config } : settings.config;
    const client = new pg.Client({
      connectionTimeoutMillis: settings.connectTimeoutMs,
      ...base,
      // pg leaves TCP keep-alive off unless asked: an idle connection a NAT or proxy dropped was
      // found dead only by the query sent on it. On unless the config says otherwise.
      keepAlive: base.keepAlive ?? true,
      keepAliveInitialDelayMillis: base.keepAliveInitialDelayMillis ?? keepAliveInitialDelayMs,
    });
    let broken = false;
    const onBroken = (error: unknown) => {
      if (broken) return;
      broken = true;
      settings.onBroken(error);
    };
    // An idle client whose server goes away emits 'error'; without a listener it would crash the process.
    client.on('error', onBroken);
    client.on('end', () => onBroken(new Error('connection ended')));
    try {
      await client.connect();
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      throw error;
    }
    if (settings.statementCacheSize > 0) {
      statementCaches.set(
        client,
        new StatementCache(settings.statementCacheSize, (name) => {
          const parsed = (client as unknown as PgInternals).connection?.parsedStatements;
          // pg marks a name parsed once the server said so: one whose statement failed to parse
          // is not on the server, and dropping it there would fail.
          if (parsed && parsed[name] === undefined) return;
          if (parsed) delete parsed[name];
          // Dropped on the server after the statement that evicted it (see dropEvicted).
          const names = evictedNames.get(client);
          if (names) names.push(name);
          else evictedNames.set(client, [name]);
        }),
      );
    }
    return client;
  },

  async close(client: Client): Promise<void> {
    client.removeAllListeners('end');
    await client.end();
  },

  // pg's Client has ref()/unref() (pg.Pool's allowExitOnIdle uses them); @types/pg omits them.
  unref(client: Client): void {
    (client as unknown as { unref(): void }).unref();
  },

  ref(client: Client): void {
    (client as unknown as { ref(): void }).ref();
  },

  abort(client: Client): void {
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  },

  query(
    client: Client,
    sql: string,
    statementValues: StatementValues | undefined,
    settings?: StatementSettings,
  ): Promise<QueryResult<QueryResultRow>> {
    const answer = sendStatement(client, sql, statementValues, settings);
    // Statements the cache evicted to name this one are dropped once it has settled (see
    // dropEvicted).
    return evictedNames.has(client) ? answer.finally(() => dropEvicted(client)) : answer;
  },

  // The status of the last ReadyForQuery: 'I' idle, 'T' in a transaction, 'E' in a failed one.
  inTransaction(client: Client): boolean {
    const status = (client as unknown as { getTransactionStatus?(): string | null }).getTransactionStatus?.();
    return status === 'T' || status === 'E';
  },

  unusable(client: Client): boolean {
    // pg.Pool's own test (@types/pg omits both fields).
    const state = client as unknown as { _ending?: boolean; _queryable?: boolean };
    return state._ending === true || state._queryable === false;
  },

  pendingWork(client: Client): Promise<void> | undefined {
    return runningDrops.get(client);
  },

  async ping(client: Client): Promise<void> {
    await client.query('SELECT 1');
  },

  async replicationLagMs(client: Client): Promise<number> {
    // Not streaming (receive LSN unknown) → unknown lag; nothing received beyond what is
    // replayed → 0 (after a restart the receive LSN restarts at a segment start, below replay);
    // else the age of the last replayed transaction.
    const result = await client.query<{ recovering: boolean; lag_ms: string | null }>(
      `SELECT pg_is_in_recovery() AS recovering,
              CASE WHEN pg_last_wal_receive_lsn() IS NULL THEN NULL
                   WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
                   ELSE EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())) * 1000 END AS lag_ms`,
    );
    const row = result.rows[0];
    if (row === undefined || !row.recovering) return 0;
    if (row.lag_ms === null) return Number.POSITIVE_INFINITY;
    return Math.max(0, Number(row.lag_ms));
  },

  beginStatements(isolation: IsolationLevel | undefined, readOnly: boolean): string[] {
    let sql = 'BEGIN';
    if (isolation !== undefined) sql += ` ${isolationLevelSql(isolation)}`;
    if (readOnly) sql += ' READ ONLY';
    return [sql];
  },

  isAuthenticationError(error: unknown): boolean {
    const code = (error as { code?: unknown } | null)?.code;
    // invalid_password, invalid_authorization_specification (no such role, pg_hba reject).
    return code === '28P01' || code === '28000';
  },

  isConnectionError(error: unknown): boolean {
    if (typeof error !== 'object' || error === null) return false;
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
    return (
      typeof message === 'string' &&
      /Connection terminated|not queryable|connection ended|Client was closed|timeout expired/i.test(message)
    );
  },

  errorCodes(error: unknown): string[] {
    const code = (error as { code?: unknown } | null)?.code;
    return typeof code === 'string' ? [code] : [];
  },
};
