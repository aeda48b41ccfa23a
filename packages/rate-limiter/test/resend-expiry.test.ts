import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expiryMarginMs, RedisClockOffset } from '../src/stores/redis-clock.js';
import { stampedExpiry } from '../src/stores/unsent-command.js';

/**
 * A Cluster call sent to master A, refused unsent, and sent again to B (the replica a failover
 * promoted): each runs the script by its own `TIME`, and the two clocks may differ by hundreds of
 * ms. Modelled here: a server's clock is the local monotonic clock plus its offset, rounded down
 * to whole ms as in check.lua.
 */
const redisTime = (localMs: number, offset: number) => Math.floor(localMs + offset);

/** A server's clock offset learnt from one reply: sent at 1000, run `queued` ms later, back `latency` ms after. */
function learnt(offset: number, queued: number, latency: number): RedisClockOffset {
  const clock = new RedisClockOffset();
  clock.observe(1_000, redisTime(1_000 + queued, offset), 1_000 + queued + latency);
  return clock;
}

/** Whether the server of `offset` skips a call of expiry `expiry` that it runs at local `ranAt`. */
const skips = (expiry: number, offset: number, ranAt: number) =>
  expiry > 0 && redisTime(ranAt, offset) > expiry;

const offsetArb = fc
  .integer({ min: 1_600_000_000_000_000, max: 1_900_000_000_000_000 })
  .map((micros) => micros / 1_000);
const skewArb = fc.integer({ min: -1_000_000, max: 1_000_000 }).map((micros) => micros / 1_000);
const msArb = (max: number) => fc.integer({ min: 0, max: max * 1_000 }).map((micros) => micros / 1_000);

describe('the expiry a resent Cluster call carries', () => {
  it('is read by the clock of the server that runs it, whatever the skew between the two masters', () => {
    fc.assert(
      fc.property(
        offsetArb,
        skewArb,
        fc.record({ queued: msArb(5), latency: msArb(5) }),
        fc.record({ queued: msArb(5), latency: msArb(5) }),
        fc.boolean(),
        msArb(1_000),
        fc.double({ min: 0, max: 3, noNaN: true }),
        (offsetA, skew, sampleA, sampleB, bHeardFrom, deadlineMs, when) => {
          const offsetB = offsetA + skew;
          const clockA = learnt(offsetA, sampleA.queued, sampleA.latency);
          const clockB = bHeardFrom
            ? learnt(offsetB, sampleB.queued, sampleB.latency)
            : new RedisClockOffset();
          const giveUpAt = 2_000 + deadlineMs;
          const first = stampedExpiry(0, clockA, giveUpAt);
          const resent = stampedExpiry(first, clockB, giveUpAt);
          // Run by B while its caller waits, or after it gave up (past the slack of a learnt
          // offset: at most 10 ms of queueing and latency, the margin, the rounding).
          const ranAt = 2_000 + when * deadlineMs + (when > 1 ? 10 + expiryMarginMs + 1 : 0);
          if (ranAt <= giveUpAt) expect(skips(resent, offsetB, ranAt), 'live call skipped').toBe(false);
          // An expiry that B cannot read right (B not heard from) must not be carried at all: the
          // store learns B's clock before it resends (see cluster-resend-expiry).
          else if (bHeardFrom || resent !== 0)
            expect(skips(resent, offsetB, ranAt), 'late call run').toBe(true);
        },
      ),
    );
  });

  it("is never the previous master's when the new one runs 300 ms ahead or behind it", () => {
    const offsetA = 1_750_000_000_000;
    const giveUpAt = 1_025;
    for (const skew of [300, -300]) {
      const offsetB = offsetA + skew;
      const first = stampedExpiry(0, learnt(offsetA, 0, 1), giveUpAt);
      // B not heard from: no expiry rather than A's, which B would read 300 ms off: a live call
      // skipped (B ahead) or one run 300 ms after its caller gave up (B behind).
      expect(stampedExpiry(first, new RedisClockOffset(), giveUpAt), `skew ${skew}`).toBe(0);
      // B heard from: its own clock's expiry.
      const resent = stampedExpiry(first, learnt(offsetB, 0, 1), giveUpAt);
      expect(skips(resent, offsetB, giveUpAt), `skew ${skew}: live`).toBe(false);
      expect(skips(resent, offsetB, giveUpAt + 5), `skew ${skew}: late`).toBe(true);
    }
  });
});
