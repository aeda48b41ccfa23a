import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../src/index.js';
import { createPgPool } from '../src/pg.js';

const refused = 'postgres://noa:noa@127.0.0.1:1/noa'; // nothing listens on port 1

/** Lets the pool's promise chains (the failover callback's outcome) run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

// README "Failure modes", `failover` option set: "the callback is asked (one call at a time, at
// most once a second) for a new primary". Time is the `clock` option's, so nothing sleeps a second.
describe('the failover callback is asked one call at a time, at most once a second', () => {
  it('many failing queries while it runs ask it once; again only a second after the last ask', async () => {
    let now = 0;
    let calls = 0;
    let answer: (config: undefined) => void = () => {};
    const db = createPgPool({
      primary: refused,
      clock: { now: () => now },
      failover: () => {
        calls += 1;
        // The first call answers when the test says so; later ones at once.
        if (calls > 1) return undefined;
        return new Promise<undefined>((resolve) => {
          answer = resolve;
        });
      },
    });
    try {
      // The first refused connect asks; the pool then backs off and refuses at once, and each
      // refusal would ask again.
      const failures = await Promise.all(
        Array.from({ length: 5 }, () => db.query('SELECT 1').catch((error: unknown) => error)),
      );
      for (const failure of failures) expect(failure).toBeInstanceOf(BackendUnavailableError);
      now = 5_000; // long past a second, but the first call has not answered
      await db.query('SELECT 1').catch(() => {});
      expect(calls).toBe(1); // one call at a time

      answer(undefined); // "keep trying the old one"
      await settle();
      await db.query('SELECT 1').catch(() => {});
      expect(calls).toBe(2); // asked again: the first ask was 5 s ago

      now = 5_999;
      await db.query('SELECT 1').catch(() => {});
      expect(calls).toBe(2); // less than a second since the last ask

      now = 6_000;
      await db.query('SELECT 1').catch(() => {});
      expect(calls).toBe(3);
    } finally {
      answer(undefined);
      await db.close();
    }
  });
});
