import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type SweepTimers, type TimeoutEntry, TimeoutSweep } from '../src/timeout-sweep.js';

interface Item extends TimeoutEntry {
  name: number;
}

function item(name: number): Item {
  return {
    name,
    timeoutDeadline: 0,
    timeoutPrevious: undefined,
    timeoutNext: undefined,
    timeoutList: undefined,
  };
}

/** Timers on a manual clock: `advance` fires what is due, in due order. */
class FakeTimers implements SweepTimers {
  time = 0;
  pending = new Map<number, { at: number; callback: () => void }>();
  #next = 0;
  now(): number {
    return this.time;
  }
  set(callback: () => void, ms: number): unknown {
    const handle = this.#next++;
    this.pending.set(handle, { at: this.time + ms, callback });
    return handle;
  }
  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  advance(ms: number): void {
    const until = this.time + ms;
    while (true) {
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.pending)
        if (entry[1].at <= until && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.pending.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].callback();
    }
    this.time = until;
  }
}

describe('TimeoutSweep', () => {
  it('expires entries at their deadline, on one timer, and not removed ones', () => {
    const timers = new FakeTimers();
    const expired: number[] = [];
    const sweep = new TimeoutSweep<Item>((entry) => expired.push(entry.name), timers);
    const [a, b, c] = [item(1), item(2), item(3)];
    sweep.add(a, 100);
    timers.advance(10);
    sweep.add(b, 100);
    sweep.add(c, 50);
    expect(timers.pending.size).toBe(1);
    sweep.remove(b);
    timers.advance(49);
    expect(expired).toEqual([]);
    timers.advance(1);
    expect(expired).toEqual([3]);
    timers.advance(40);
    expect(expired).toEqual([3, 1]);
    expect(sweep.size).toBe(0);
    expect(timers.pending.size).toBe(0);
  });

  it('matches a setTimeout per entry under any sequence of adds, removes and time steps', () => {
    const operation = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        entry: fc.nat(9),
        timeoutMs: fc.constantFrom(1, 5, 20, 100),
      }),
      fc.record({ kind: fc.constant('remove' as const), entry: fc.nat(9) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60 }) }),
    );
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 60 }), (operations) => {
        const timers = new FakeTimers();
        const expired: { name: number; at: number }[] = [];
        const sweep = new TimeoutSweep<Item>(
          (entry) => expired.push({ name: entry.name, at: timers.time }),
          timers,
        );
        const items = Array.from({ length: 10 }, (_, name) => item(name));
        // The model: one deadline per waiting entry, as a setTimeout per entry would keep.
        const deadlines = new Map<number, number>();
        const modelExpired: number[] = [];
        /** Per expiry in the model: no earlier than its deadline, no later than the step's end. */
        const windows: { name: number; from: number; to: number }[] = [];
        for (const step of operations) {
          if (step.kind === 'add') {
            sweep.add(items[step.entry]!, step.timeoutMs);
            deadlines.set(step.entry, timers.time + step.timeoutMs);
          } else if (step.kind === 'remove') {
            sweep.remove(items[step.entry]!);
            deadlines.delete(step.entry);
          } else {
            const until = timers.time + step.ms;
            timers.advance(step.ms);
            for (const [name, deadline] of [...deadlines].sort((x, y) => x[1] - y[1])) {
              if (deadline <= until) {
                modelExpired.push(name);
                windows.push({ name, from: deadline, to: until });
                deadlines.delete(name);
              }
            }
          }
        }
        expect(expired.map((entry) => entry.name).sort()).toEqual(modelExpired.sort());
        const actual = [...expired].sort((x, y) => x.name - y.name || x.at - y.at);
        const expected = [...windows].sort((x, y) => x.name - y.name || x.from - y.from);
        for (let index = 0; index < actual.length; index += 1) {
          expect(actual[index]!.at).toBeGreaterThanOrEqual(expected[index]!.from);
          expect(actual[index]!.at).toBeLessThanOrEqual(expected[index]!.to);
        }
        expect(sweep.size).toBe(deadlines.size);
      }),
    );
  });

  it('clear forgets every entry and stops its timer', () => {
    const timers = new FakeTimers();
    const expired: number[] = [];
    const sweep = new TimeoutSweep<Item>((entry) => expired.push(entry.name), timers);
    sweep.add(item(1), 10);
    sweep.add(item(2), 20);
    sweep.clear();
    expect(timers.pending.size).toBe(0);
    timers.advance(100);
    expect(expired).toEqual([]);
  });
});
