/** Where a statement may run. */
export type StatementTarget = 'primary' | 'replica';

/** Why a statement was routed where it was (shown in debug logs and metrics). */
export type RouteReason =
  | 'hint'
  | 'read'
  | 'write-statement'
  | 'writing-cte'
  | 'locking-read'
  | 'select-into'
  | 'write-function'
  | 'session-state';

/** The classifier's verdict on one SQL text. */
export interface StatementRoute {
  /** Where it may run. */
  target: StatementTarget;
  /** The rule that decided. */
  reason: RouteReason;
}

/** SQL dialect: decides string escapes and comment forms. */
export type SqlDialect = 'postgres' | 'mysql';

/**
 * Functions with side effects (sequences, advisory locks, notifications, session settings)
 * or whose answer only the primary knows (`currval`, `last_insert_id`): a read that calls one
 * must run on the primary.
 */
export const defaultWriteFunctions: readonly string[] = [
  'nextval',
  'setval',
  'currval',
  'lastval',
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'pg_notify',
  'txid_current',
  'pg_current_xact_id',
  'set_config',
  'lo_create',
  'lo_import',
  'lo_unlink',
  'pg_create_restore_point',
  'pg_switch_wal',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'get_lock',
  'release_lock',
  'release_all_locks',
  // A named lock lives on the server that took it: a replica answers "free" for every one.
  'is_free_lock',
  'is_used_lock',
  'last_insert_id',
];

const READ_STARTS = new Set(['select', 'show', 'explain', 'values', 'table', 'describe', 'desc', 'with']);
const WRITE_WORDS = new Set([
  'insert',
  'update',
  'delete',
  'merge',
  'upsert',
  'replace',
  'truncate',
  'create',
  'drop',
  'alter',
  'grant',
  'revoke',
  'call',
  'copy',
  'lock',
]);
const LOCK_AFTER_FOR = new Set(['update', 'share', 'no', 'key']);

interface Token {
  word: string;
  call: boolean;
}

interface Scan {
  statements: Token[][];
  hint: StatementTarget | undefined;
}

function isWordChar(code: number): boolean {
  return (
    (code >= 97 && code <= 122) || // a-z
    (code >= 65 && code <= 90) || // A-Z
    (code >= 48 && code <= 57) || // 0-9
    code === 95 || // _
    code === 36 || // $ (inside identifiers)
    code > 127
  );
}

function hintIn(comment: string): StatementTarget | undefined {
  if (comment.includes('noa:primary')) return 'primary';
  if (comment.includes('noa:replica')) return 'replica';
  return undefined;
}

/** Splits SQL into statements of lower-case words, skipping strings, quoted names and comments. */
function scan(sql: string, dialect: SqlDialect): Scan {
  const statements: Token[][] = [[]];
  let hint: StatementTarget | undefined;
  let current = statements[0]!;
  const length = sql.length;
  let index = 0;
  while (index < length) {
    const code = sql.charCodeAt(index);
    const next = index + 1 < length ? sql.charCodeAt(index + 1) : 0;
    if (code === 45 && next === 45) {
      // -- line comment
      const end = sql.indexOf('\n', index);
      const stop = end === -1 ? length : end;
      hint ??= hintIn(sql.slice(index, stop));
      index = stop;
    } else if (code === 35 && dialect === 'mysql') {
      // # line comment (MySQL)
      const end = sql.indexOf('\n', index);
      const stop = end === -1 ? length : end;
      hint ??= hintIn(sql.slice(index, stop));
      index = stop;
    } else if (code === 47 && next === 42) {
      // /* block comment */ (nested in Postgres)
      let depth = 1;
      let cursor = index + 2;
      while (cursor < length && depth > 0) {
        if (sql.charCodeAt(cursor) === 42 && sql.charCodeAt(cursor + 1) === 47) {
          depth -= 1;
          cursor += 2;
        } else if (
          dialect === 'postgres' &&
          sql.charCodeAt(cursor) === 47 &&
          sql.charCodeAt(cursor + 1) === 42
        ) {
          depth += 1;
          cursor += 2;
        } else cursor += 1;
      }
      hint ??= hintIn(sql.slice(index, cursor));
      index = cursor;
    } else if (code === 39 || code === 34 || code === 96) {
      // 'string', "identifier" (or MySQL string), `identifier`
      const backslashEscapes =
        dialect === 'mysql' ||
        (code === 39 && index > 0 && (sql[index - 1] === 'E' || sql[index - 1] === 'e'));
      let cursor = index + 1;
      while (cursor < length) {
        const inner = sql.charCodeAt(cursor);
        if (backslashEscapes && inner === 92) cursor += 2;
        else if (inner === code) {
          if (sql.charCodeAt(cursor + 1) === code)
            cursor += 2; // doubled quote
          else break;
        } else cursor += 1;
      }
      index = cursor + 1;
    } else if (code === 36 && dialect === 'postgres' && !isDigit(next)) {
      // $tag$ … $tag$ dollar quoting
      const tagEnd = sql.indexOf('$', index + 1);
      const tag = tagEnd === -1 ? '' : sql.slice(index, tagEnd + 1);
      if (tagEnd === -1 || !/^\$[A-Za-z_]*\$$/.test(tag)) index += 1;
      else {
        const close = sql.indexOf(tag, tagEnd + 1);
        index = close === -1 ? length : close + tag.length;
      }
    } else if (code === 59) {
      // ; starts a new statement
      current = [];
      statements.push(current);
      index += 1;
    } else if (isWordChar(code) && !isDigit(code)) {
      let cursor = index + 1;
      while (cursor < length && isWordChar(sql.charCodeAt(cursor))) cursor += 1;
      const word = sql.slice(index, cursor).toLowerCase();
      let after = cursor;
      while (after < length && isSpace(sql.charCodeAt(after))) after += 1;
      current.push({ word, call: sql.charCodeAt(after) === 40 });
      index = cursor;
    } else index += 1;
  }
  return { statements: statements.filter((tokens) => tokens.length > 0), hint };
}

/**
 * Postgres' large object functions (`lo_*`, `lowrite`): most write (`lo_from_bytea`, `lo_put`,
 * `lo_creat`, `lo_truncate`), `lo_export` writes a file on the server it runs on, and the
 * descriptor ones work only inside the transaction that opened them: all on the primary.
 */
function isLargeObjectFunction(name: string): boolean {
  return name.startsWith('lo_') || name === 'lowrite' || name === 'loread';
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13;
}

function classifyTokens(tokens: Token[], writeFunctions: ReadonlySet<string>): StatementRoute {
  const first = tokens[0]!.word;
  if (!READ_STARTS.has(first)) {
    const sessionState = first === 'set' || first === 'begin' || first === 'start' || first === 'prepare';
    return { target: 'primary', reason: sessionState ? 'session-state' : 'write-statement' };
  }
  for (let index = 0; index < tokens.length; index += 1) {
    const token = tokens[index]!;
    if (token.call) {
      if (writeFunctions.has(token.word) || isLargeObjectFunction(token.word))
        return { target: 'primary', reason: 'write-function' };
      continue;
    }
    const word = token.word;
    // MariaDB's sequence syntax: NEXT VALUE FOR s is NEXTVAL(s), PREVIOUS VALUE FOR s LASTVAL(s).
    if (
      (word === 'next' || word === 'previous') &&
      tokens[index + 1]?.word === 'value' &&
      tokens[index + 2]?.word === 'for' &&
      !tokens[index + 1]!.call
    ) {
      return { target: 'primary', reason: 'write-function' };
    }
    if (word === 'for' && LOCK_AFTER_FOR.has(tokens[index + 1]?.word ?? '')) {
      return { target: 'primary', reason: 'locking-read' };
    }
    if (word === 'lock' && tokens[index + 1]?.word === 'in')
      return { target: 'primary', reason: 'locking-read' };
    if (word === 'into' && first !== 'explain') return { target: 'primary', reason: 'select-into' };
    if (WRITE_WORDS.has(word)) {
      return { target: 'primary', reason: first === 'with' ? 'writing-cte' : 'write-statement' };
    }
  }
  return { target: 'replica', reason: 'read' };
}

/**
 * Decides whether a SQL text may run on a replica. Only statements that start as reads
 * (`SELECT`, `SHOW`, `EXPLAIN`, `VALUES`, `TABLE`, `WITH` without a data-modifying part)
 * and contain no locking clause (`FOR UPDATE/SHARE`, `LOCK IN SHARE MODE`), no `INTO`, and no
 * call to a known writing function go to a replica; everything else, unknown statements
 * included, goes to the primary. A `noa:primary` comment forces the primary; a `noa:replica`
 * comment is obeyed only for statements that are reads anyway.
 */
export function classifyStatement(
  sql: string,
  dialect: SqlDialect = 'postgres',
  writeFunctions: ReadonlySet<string> = defaultWriteFunctionSet,
): StatementRoute {
  const { statements, hint } = scan(sql, dialect);
  if (hint === 'primary') return { target: 'primary', reason: 'hint' };
  if (statements.length === 0) return { target: 'primary', reason: 'write-statement' };
  for (const tokens of statements) {
    const route = classifyTokens(tokens, writeFunctions);
    if (route.target === 'primary') return route;
  }
  return hint === 'replica' ? { target: 'replica', reason: 'hint' } : { target: 'replica', reason: 'read' };
}

const defaultWriteFunctionSet: ReadonlySet<string> = new Set(defaultWriteFunctions);

/**
 * A classifier with a bounded cache keyed by SQL text: applications repeat the same few
 * hundred statements, so after warm-up routing costs one Map lookup.
 */
export function createStatementClassifier(
  options: { dialect?: SqlDialect; extraWriteFunctions?: readonly string[]; cacheSize?: number } = {},
): (sql: string) => StatementRoute {
  const dialect = options.dialect ?? 'postgres';
  const functions = new Set([...defaultWriteFunctions, ...(options.extraWriteFunctions ?? []).map(lower)]);
  const cacheSize = options.cacheSize ?? 2_000;
  const cache = new Map<string, StatementRoute>();
  return (sql) => {
    const cached = cache.get(sql);
    if (cached !== undefined) return cached;
    const route = classifyStatement(sql, dialect, functions);
    if (cacheSize > 0 && sql.length <= 8_192) {
      // Insertion-ordered Map: dropping the first key evicts the oldest entry.
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(sql, route);
    }
    return route;
  };
}

function lower(name: string): string {
  return name.toLowerCase();
}
