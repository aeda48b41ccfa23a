import type { Connection, ConnectionOptions, FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import { mysqlConnectionStringProblem } from '../connection-string.js';
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

/** Refused credentials: a wrong password or user, or a user without access to the database. */
const authenticationCodes = new Set([
  'ER_ACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
]);

/** What the driver reads of mysql2's core connection, the one under a promise connection (not public API). */
interface MysqlCore {
  stream?: { ref?(): void; unref?(): void; destroy(): void };
  config?: { multipleStatements?: boolean };
  /** Set by end() and destroy(). */
  _closing?: boolean;
  /** Set when the socket was lost: mysql2 then refuses every command. */
  _fatalError?: unknown;
}

/** The core connection under a mysql2 promise connection. */
function coreOf(conn: Connection): MysqlCore | undefined {
  return (conn as unknown as { connection?: MysqlCore }).connection;
}

/** The socket under a mysql2 promise connection (its core connection's stream). */
function socketOf(conn: Connection): MysqlCore['stream'] {
  return coreOf(conn)?.stream;
}

/** How to reach one MySQL/MariaDB server: a URL or mysql2 ConnectionOptions. */
export type MysqlConnectionConfig = string | ConnectionOptions;

/** What mysql2's promise API returns: rows (or a result header) and field metadata. */
export type MysqlResult = [QueryResult, FieldPacket[]];

/** Loads the optional `mysql2` peer dependency on first use. */
const loadMysql = lazyPeer<typeof import('mysql2/promise')>('mysql2');

/**
 * Connections whose last result header said a transaction is open (`SERVER_STATUS_IN_TRANS`):
 * mysql2 keeps no such state, so it is read from the OK packets of the statements run through
 * this driver (`START TRANSACTION`, `BEGIN`, a write with autocommit off, `COMMIT`). Statements
 * sent on a borrowed connection directly are not seen.
 */
const openTransactions = new WeakSet<Connection>();
const SERVER_STATUS_IN_TRANS = 1;

/**
 * A statement failed: an error packet carries no server status. A single statement leaves the
 * transaction state as it was (or ends the transaction: a deadlock; the stale "open" then costs
 * one needless ROLLBACK), but a multi-statement text that fails part-way may have opened one
 * (`START TRANSACTION; INSERT …; <fails>`): on a `multipleStatements` connection the state is
 * unknown, so it is taken as open, and the connection is rolled back when given back.
 */
function noteFailure(conn: Connection, error: unknown): never {
  if (coreOf(conn)?.config?.multipleStatements === true) openTransactions.add(conn);
  throw error;
}

/** Notes the transaction status of `result`'s OK packets (a multi-statement's last one wins). */
function noteTransactionStatus(conn: Connection, result: MysqlResult): MysqlResult {
  const first = result[0] as unknown;
  const parts = Array.isArray(first) ? first : [first];
  for (const part of parts) {
    // Rows are not headers, even with a column called serverStatus.
    if (typeof part !== 'object' || part === null || part.constructor?.name !== 'ResultSetHeader') continue;
    const status = (part as { serverStatus?: unknown }).serverStatus;
    if (typeof status !== 'number') continue;
    if ((status & SERVER_STATUS_IN_TRANS) !== 0) openTransactions.add(conn);
    else openTransactions.delete(conn);
  }
  return result;
}

/**
 * The statement methods of a connection lent by `MysqlPool#getConnection()`, noting the
 * transaction status as the driver's own statements do: `query()`/`execute()` results,
 * `beginTransaction()`, `commit()` and `rollback()` (statements of a `prepare()`d handle are not
 * seen). Bound to `conn`; the connection itself is not changed.
 */
export function trackedStatementMethods(
  conn: Connection,
): Record<string, (...args: never[]) => Promise<unknown>> {
  const noted =
    (method: (...args: never[]) => Promise<unknown>) =>
    (...args: never[]) =>
      method.apply(conn, args).then(
        (result) => noteTransactionStatus(conn, result as MysqlResult),
        (error: unknown) => noteFailure(conn, error),
      );
  const ended = () => {
    openTransactions.delete(conn);
  };
  return {
    query: noted(conn.query as (...args: never[]) => Promise<unknown>),
    execute: noted(conn.execute as (...args: never[]) => Promise<unknown>),
    beginTransaction: () =>
      conn.beginTransaction().then(() => {
        openTransactions.add(conn);
      }),
    commit: () => conn.commit().then(ended),
    rollback: () => conn.rollback().then(ended),
  };
}

/** Connections opened with `statementCacheSize: 0`: `execute()` closes each statement after it runs. */
const uncached = new WeakSet<Connection>();

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
]);

/** Whether a mysql2 URI sets `keepAliveInitialDelay` (mysql2 lets an option given beside it win). */
function uriSetsKeepAliveDelay(uri: string | undefined): boolean {
  if (uri === undefined) return false;
  try {
    return new URL(uri).searchParams.has('keepAliveInitialDelay');
  } catch {
    return false;
  }
}

/**
 * Driver for `mysql2/promise`. Statements run through mysql2's `query()` (values formatted
 * client-side, as mysql2 does: lists, objects, `??` identifiers); with the `{ execute: true }`
 * setting (`MysqlPool#execute`) through `execute()`, whose per-connection statement cache is
 * bounded by `statementCacheSize` (mysql2 closes the statements it evicts; 0 closes each after
 * it runs). Its other settings are mysql2 `QueryOptions` fields (`rowsAsArray`, `typeCast`…),
 * given to mysql2 in its options-object form.
 */
export const mysqlDriver: SqlDriver<Connection, MysqlConnectionConfig, MysqlResult> = {
  name: 'mysql2',
  dialect: 'mysql',
  defaultRetryCodes: ['1213', '1205', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'],
  urlSchemes: ['mysql', 'mariadb'],
  connectionStringProblem: mysqlConnectionStringProblem,
  connectionStringOption: 'uri',

  async connect(settings: ConnectSettings<MysqlConnectionConfig>): Promise<Connection> {
    const mysql = await loadMysql();
    const base: ConnectionOptions =
      typeof settings.config === 'string' ? { uri: settings.config } : settings.config;
    const conn = await mysql.createConnection({
      connectTimeout: settings.connectTimeoutMs,
      ...base,
      // mysql2 turns keep-alive on (enableKeepAlive) at the OS's first-probe delay (2 h on Linux),
      // longer than NATs and proxies keep an idle flow. A delay given in the options or URL stays.
      keepAliveInitialDelay:
        base.keepAliveInitialDelay ?? (uriSetsKeepAliveDelay(base.uri) ? undefined : keepAliveInitialDelayMs),
      maxPreparedStatements: Math.max(1, settings.statementCacheSize),
    });
    let broken = false;
    const onBroken = (error: unknown) => {
      if (broken) return;
      broken = true;
      settings.onBroken(error);
    };
    conn.on('error', onBroken);
    conn.once('end', () => onBroken(new Error('connection ended')));
    if (settings.statementCacheSize === 0) uncached.add(conn);
    return conn;
  },

  async close(conn: Connection): Promise<void> {
    conn.removeAllListeners('end');
    await conn.end().catch(() => conn.destroy());
  },

  unref(conn: Connection): void {
    socketOf(conn)?.unref?.();
  },

  ref(conn: Connection): void {
    socketOf(conn)?.ref?.();
  },

  abort(conn: Connection): void {
    // Connection#destroy() only ends our side (FIN) and keeps reading, so a statement running
    // on a slow or frozen server would still be awaited: drop the socket itself.
    const stream = socketOf(conn);
    if (stream === undefined) conn.destroy();
    else stream.destroy();
  },

  query(
    conn: Connection,
    sql: string,
    values: StatementValues | undefined,
    settings?: StatementSettings,
  ): Promise<MysqlResult> {
    // Server-side binding is not client-side formatting: `IN (?)` with a list, `SET ?` with an
    // object, `??`, undefined, bigint, dates and `? / 3` all differ, so only an explicit
    // execute() prepares.
    // Plain text (the common call) goes as is: no settings, no object to build per query.
    if (settings === undefined) {
      const answer = values === undefined ? conn.query(sql) : conn.query(sql, values as never);
      return answer.then(
        (result) => noteTransactionStatus(conn, result),
        (error: unknown) => noteFailure(conn, error),
      );
    }
    const { execute: prepared, ...options } = settings;
    // mysql2's options-object form: the caller's options (`rowsAsArray`, `typeCast`…) with the text.
    const statement = { ...options, sql } as QueryOptions;
    const answer =
      prepared === true
        ? execute(conn, statement, values)
        : values === undefined
          ? conn.query(statement)
          : conn.query(statement, values as never);
    return answer.then(
      (result) => noteTransactionStatus(conn, result),
      (error: unknown) => noteFailure(conn, error),
    );
  },

  unusable(conn: Connection): boolean {
    // The core connection under the promise wrapper: end()/destroy() set _closing, a lost
    // socket _fatalError (mysql2 then refuses every command: "connection is in closed state").
    const core = coreOf(conn);
    return core !== undefined && (core._closing === true || (core._fatalError ?? null) !== null);
  },

  inTransaction(conn: Connection): boolean {
    return openTransactions.has(conn);
  },

  async ping(conn: Connection): Promise<void> {
    await conn.ping();
  },

  async replicationLagMs(conn: Connection): Promise<number> {
    let rows: Record<string, unknown>[];
    try {
      [rows] = (await conn.query('SHOW REPLICA STATUS')) as unknown as [Record<string, unknown>[]];
    } catch {
      [rows] = (await conn.query('SHOW SLAVE STATUS')) as unknown as [Record<string, unknown>[]];
    }
    const row = rows[0];
    if (row === undefined) return 0; // not a replica
    const seconds = row.Seconds_Behind_Source ?? row.Seconds_Behind_Master;
    if (seconds === null || seconds === undefined) return Number.POSITIVE_INFINITY; // replication stopped
    return Number(seconds) * 1_000;
  },

  beginStatements(isolation: IsolationLevel | undefined, readOnly: boolean): string[] {
    const statements: string[] = [];
    if (isolation !== undefined) statements.push(`SET TRANSACTION ${isolationLevelSql(isolation)}`);
    statements.push(readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION');
    return statements;
  },

  isAuthenticationError(error: unknown): boolean {
    const code = (error as { code?: unknown } | null)?.code;
    return typeof code === 'string' && authenticationCodes.has(code);
  },

  isConnectionError(error: unknown): boolean {
    if (typeof error !== 'object' || error === null) return false;
    const { code, fatal, message } = error as { code?: unknown; fatal?: unknown; message?: unknown };
    if (fatal === true) return true;
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
    return typeof message === 'string' && /connection is in closed state|connection ended/i.test(message);
  },

  errorCodes(error: unknown): string[] {
    const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown };
    const codes: string[] = [];
    if (typeof code === 'string') codes.push(code);
    if (typeof errno === 'number') codes.push(String(errno));
    return codes;
  },
};

async function execute(
  conn: Connection,
  statement: QueryOptions,
  values: StatementValues | undefined,
): Promise<MysqlResult> {
  if (!uncached.has(conn)) return conn.execute(statement, values as never);
  try {
    return await conn.execute(statement, values as never);
  } finally {
    conn.unprepare(statement.sql);
  }
}
