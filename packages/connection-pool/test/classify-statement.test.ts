import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyStatement, createStatementClassifier } from '../src/index.js';

const cases: [string, 'primary' | 'replica', string][] = [
  ['SELECT 1', 'replica', 'read'],
  ['  select * from users where id = $1', 'replica', 'read'],
  ['(SELECT a FROM t) UNION (SELECT b FROM u)', 'replica', 'read'],
  ['SHOW server_version', 'replica', 'read'],
  ['EXPLAIN SELECT * FROM t', 'replica', 'read'],
  ['VALUES (1), (2)', 'replica', 'read'],
  ['WITH x AS (SELECT 1) SELECT * FROM x', 'replica', 'read'],
  ["SELECT 'insert into t values (1)' AS s", 'replica', 'read'],
  ['SELECT "update" FROM t', 'replica', 'read'],
  ['SELECT $$ delete from t $$', 'replica', 'read'],
  ['SELECT $fn$ nextval(1) $fn$', 'replica', 'read'],
  ["SELECT replace(name, 'a', 'b') FROM t", 'replica', 'read'],
  ['SELECT 1 -- FOR UPDATE', 'replica', 'read'],
  ['SELECT /* update */ 1', 'replica', 'read'],
  ['INSERT INTO t VALUES (1)', 'primary', 'write-statement'],
  ['update t set a = 1', 'primary', 'write-statement'],
  ['DELETE FROM t', 'primary', 'write-statement'],
  ['CREATE TABLE t (a int)', 'primary', 'write-statement'],
  ['BEGIN', 'primary', 'session-state'],
  ['SET search_path = x', 'primary', 'session-state'],
  ['SELECT * FROM t WHERE id = 1 FOR UPDATE', 'primary', 'locking-read'],
  ['SELECT * FROM t FOR SHARE SKIP LOCKED', 'primary', 'locking-read'],
  ['SELECT * FROM t FOR NO KEY UPDATE', 'primary', 'locking-read'],
  ['SELECT * FROM t FOR KEY SHARE', 'primary', 'locking-read'],
  ['SELECT * FROM t LOCK IN SHARE MODE', 'primary', 'locking-read'],
  ['WITH moved AS (DELETE FROM a RETURNING *) SELECT * FROM moved', 'primary', 'writing-cte'],
  ['WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x', 'primary', 'writing-cte'],
  ["SELECT nextval('seq')", 'primary', 'write-function'],
  ["SELECT pg_catalog.setval('seq', 5)", 'primary', 'write-function'],
  ['SELECT pg_advisory_lock(42)', 'primary', 'write-function'],
  ['SELECT pg_try_advisory_xact_lock (1)', 'primary', 'write-function'],
  ["SELECT GET_LOCK('x', 1)", 'primary', 'write-function'],
  // Named locks live on the server that took them: a replica answers "free" for every lock.
  ["SELECT IS_FREE_LOCK('x')", 'primary', 'write-function'],
  ["SELECT IS_USED_LOCK('x')", 'primary', 'write-function'],
  // Large objects: every lo_* function (README), not only the three once listed.
  ["SELECT lo_from_bytea(0, '\\x00')", 'primary', 'write-function'],
  ["SELECT lo_put(16384, 0, '\\x00')", 'primary', 'write-function'],
  ['SELECT lo_creat(-1)', 'primary', 'write-function'],
  ["SELECT lo_export(16384, '/tmp/blob')", 'primary', 'write-function'],
  ['SELECT lo_truncate(fd, 0) FROM t', 'primary', 'write-function'],
  ["SELECT lowrite(fd, '\\x00') FROM t", 'primary', 'write-function'],
  ['SELECT lo_owner FROM t', 'replica', 'read'],
  ['SELECT * INTO new_table FROM t', 'primary', 'select-into'],
  ['/* noa:primary */ SELECT * FROM t', 'primary', 'hint'],
  ['SELECT 1 -- noa:primary', 'primary', 'hint'],
  ['/* noa:replica */ SELECT * FROM t', 'replica', 'hint'],
  ['/* noa:replica */ INSERT INTO t VALUES (1)', 'primary', 'write-statement'],
  ['SELECT 1; DELETE FROM t', 'primary', 'write-statement'],
  ['VACUUM t', 'primary', 'write-statement'],
  ['', 'primary', 'write-statement'],
];

describe('classifyStatement', () => {
  it.each(cases)('%s → %s (%s)', (sql, target, reason) => {
    expect(classifyStatement(sql)).toEqual({ target, reason });
  });

  it('handles MySQL comments and backslash escapes', () => {
    expect(classifyStatement("SELECT 'it\\'s; delete' # insert", 'mysql')).toEqual({
      target: 'replica',
      reason: 'read',
    });
    expect(classifyStatement('SELECT 1 # noa:primary', 'mysql').target).toBe('primary');
  });

  it("routes MariaDB's sequence syntax as its functions: NEXT VALUE FOR (NEXTVAL) and PREVIOUS VALUE FOR (LASTVAL) on the primary", () => {
    const write = { target: 'primary', reason: 'write-function' };
    expect(classifyStatement('SELECT NEXT VALUE FOR order_ids', 'mysql')).toEqual(write);
    expect(classifyStatement('select next value for app.order_ids AS id', 'mysql')).toEqual(write);
    expect(classifyStatement('SELECT PREVIOUS VALUE FOR order_ids', 'mysql')).toEqual(write);
    expect(classifyStatement('SELECT NEXTVAL(order_ids)', 'mysql')).toEqual(write);
    // A column called next or value is no sequence.
    expect(classifyStatement('SELECT next, value FROM t', 'mysql')).toEqual({
      target: 'replica',
      reason: 'read',
    });
  });

  it('caches verdicts and honours extra write functions', () => {
    const classify = createStatementClassifier({ extraWriteFunctions: ['Audit_Touch'], cacheSize: 2 });
    expect(classify('SELECT audit_touch(1)').target).toBe('primary');
    expect(classify('SELECT 1').target).toBe('replica');
    expect(classify('SELECT 2').target).toBe('replica');
    expect(classify('SELECT audit_touch(1)')).toEqual({ target: 'primary', reason: 'write-function' });
  });

  const stringBody = fc.string({ maxLength: 30 }).map((text) => text.replaceAll("'", "''"));
  const writeStatement = fc.constantFrom(
    'INSERT INTO t VALUES (1)',
    'UPDATE t SET a = 1',
    'DELETE FROM t',
    'SELECT * FROM t FOR UPDATE',
    "SELECT nextval('s')",
    'WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d',
  );

  it('property: text inside a string literal never changes the route of a read', () => {
    fc.assert(
      fc.property(stringBody, (body) => {
        expect(classifyStatement(`SELECT '${body}' AS x FROM t`).target).toBe('replica');
      }),
    );
  });

  it('property: writes go to the primary whatever the case, spacing or hints around them', () => {
    fc.assert(
      fc.property(
        writeStatement,
        fc.boolean(),
        fc.constantFrom(' ', '\n', '\t  '),
        fc.constantFrom('', '/* noa:replica */ ', '-- note\n'),
        (sql, upper, space, prefix) => {
          const text = prefix + (upper ? sql.toUpperCase() : sql.toLowerCase()).replaceAll(' ', space);
          expect(classifyStatement(text).target).toBe('primary');
        },
      ),
    );
  });

  it('property: a noa:primary hint always wins', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (sql) => {
        expect(classifyStatement(`/* noa:primary */ ${sql.replaceAll('*/', '')}`).target).toBe('primary');
      }),
    );
  });
});
