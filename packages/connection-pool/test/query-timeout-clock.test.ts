import { describe, expect, it } from 'vitest';
import { QueryTimeoutError, SqlCluster, type SqlDriver } from '../src/index.js';

interface FakeConn {
  id: number;
  /** Rejects the statement in flight, as a dropped socket does. */
  fail?: (error: Error) => void;
}

/**
 * A driver whose statements answer after `answerMs` (never, when undefined), and whose `abort`
 * drops the connection under a statement in flight. No server: the query watchdog is under test.
 */
function slowDriver(answerMs: number | undefined, aborted: number[]): SqlDriver<FakeConn, string, string> {
  let nextId = 0;
  return {
    name: 'fake',
    dialect: 'postgres',
    defaultRetryCodes: [],
    connect: async () => ({ id: ++nextId }),
    close: async () => {},
    abort: (conn) => {
      aborted.push(conn.id);
      conn.fail?.(Object.assign(new Error('connection dropped'), { code: 'ECONNRESET' }));
    },
    query: (conn) =>
      new Promise<string>((resolve, reject) => {
        conn.fail = reject;
        if (answerMs !== undefined) setTimeout(() => resolve('answer'), answerMs);
      }),
    ping: async () => {},
    replicationLagMs: async () => 0,
    beginStatements: () => [],
    isConnectionError: (error) => (error as { code?: string }).code === 'ECONNRESET',
    errorCodes: () => [],
  };
}

// The acquire deadlines already hold when the wall clock steps (pool.test.ts, "NTP"); so must
// queryTimeoutMs: a statement is abandoned (its connection closed, its outcome unknown) after it
// ran that long, not when the system clock jumped.
describe('queryTimeoutMs when the wall clock steps (NTP, a VM resumed)', () => {
  it('a step forward does not abandon a statement that answers in time', async () => {
    const aborted: number[] = [];
    const db = new SqlCluster(slowDriver(1_200, aborted), { primary: 'primary', queryTimeoutMs: 2_000 });
    const realNow = Date.now;
    try {
      const answer = db.query('SELECT 1');
      // A tick, so the statement is sent (and its start noted) before the clock steps.
      await new Promise((resolve) => setTimeout(resolve, 50));
      Date.now = () => realNow() + 3_600_000;
      await expect(answer).resolves.toBe('answer');
      expect(aborted).toEqual([]);
    } finally {
      Date.now = realNow;
      await db.close();
    }
  });

  it('a step back does not keep a statement past queryTimeoutMs', async () => {
    const aborted: number[] = [];
    const db = new SqlCluster(slowDriver(undefined, aborted), { primary: 'primary', queryTimeoutMs: 200 });
    const realNow = Date.now;
    const start = realNow();
    try {
      const answer = db.query('SELECT 1');
      await new Promise((resolve) => setTimeout(resolve, 20));
      Date.now = () => realNow() - 3_600_000;
      // Generous: 200 ms and a watchdog tick (50 ms), on a loaded machine.
      const bound = new Promise((resolve) => setTimeout(() => resolve('still running after 5 s'), 5_000));
      await expect(Promise.race([answer, bound])).rejects.toBeInstanceOf(QueryTimeoutError);
      expect(realNow() - start).toBeLessThan(5_000);
      expect(aborted).toEqual([1]);
    } finally {
      Date.now = realNow;
      await db.close();
    }
  });
});
