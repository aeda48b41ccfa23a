import { describe, expect, it } from 'vitest';
import type { Settlement } from '../src/provider.js';
import {
  maxRememberedOutcomes,
  RememberedOutcomes,
  rememberOutcomesMs,
} from '../src/providers/rabbitmq/remembered-outcomes.js';
import { jobRecord } from './helpers.js';

function completion(id: string): Settlement {
  const record = jobRecord(id);
  return { kind: 'complete', record, result: id };
}

function clock(start = 1_000) {
  const time = { now: start };
  return { time, now: () => time.now };
}

describe('RememberedOutcomes (kept outcomes of tries whose channel closed)', () => {
  it('finds an outcome by the redelivered bytes of its queue, and by the very settlement sent again', () => {
    const outcomes = new RememberedOutcomes(60_000);
    const settlement = completion('a');
    const kept = outcomes.remember('q', 'a', Buffer.from('message a'), settlement, 0);
    expect(outcomes.match('q', Buffer.from('message a'))).toBe(kept);
    // Other bytes (a retry's message, another add of the id), or another queue: not its redelivery.
    expect(outcomes.match('q', Buffer.from('message a, retried'))).toBeUndefined();
    expect(outcomes.match('other', Buffer.from('message a'))).toBeUndefined();
    expect(outcomes.sentAgain('q', settlement)).toBe(kept);
    // A settlement of a later try of the job (a copy, not the object the worker sent): not it.
    expect(outcomes.sentAgain('q', { ...settlement })).toBeUndefined();
    outcomes.forget(kept);
    expect(outcomes.match('q', Buffer.from('message a'))).toBeUndefined();
    expect(outcomes.size).toBe(0);
  });

  it('forgets an outcome once its age is over', () => {
    const { time, now } = clock();
    const outcomes = new RememberedOutcomes(5_000, 10, now);
    const settlement = completion('a');
    outcomes.remember('q', 'a', Buffer.from('a'), settlement, 0);
    time.now += 4_999;
    expect(outcomes.match('q', Buffer.from('a'))).toBeDefined();
    time.now += 1;
    expect(outcomes.match('q', Buffer.from('a'))).toBeUndefined();
    expect(outcomes.sentAgain('q', settlement)).toBeUndefined();
    expect(outcomes.size).toBe(0);
  });

  it('keeps at most its count, forgetting the oldest first', () => {
    const outcomes = new RememberedOutcomes(60_000, 3);
    for (const id of ['a', 'b', 'c', 'd']) outcomes.remember('q', id, Buffer.from(id), completion(id), 0);
    expect(outcomes.size).toBe(3);
    expect(outcomes.match('q', Buffer.from('a'))).toBeUndefined();
    expect(outcomes.match('q', Buffer.from('d'))).toBeDefined();
  });

  it('keeps one outcome per job: a newer one replaces it', () => {
    const outcomes = new RememberedOutcomes(60_000);
    const first = completion('a');
    const second = completion('a');
    outcomes.remember('q', 'a', Buffer.from('first message'), first, 0);
    const kept = outcomes.remember('q', 'a', Buffer.from('second message'), second, 0);
    expect(outcomes.size).toBe(1);
    expect(outcomes.sentAgain('q', first)).toBeUndefined();
    expect(outcomes.sentAgain('q', second)).toBe(kept);
    expect(outcomes.match('q', Buffer.from('first message'))).toBeUndefined();
  });

  it('is bounded as the README says: 60 s (or ten reconnect delays) and 1,000 outcomes', () => {
    expect(rememberOutcomesMs(5_000)).toBe(60_000);
    expect(rememberOutcomesMs(30_000)).toBe(300_000);
    expect(maxRememberedOutcomes).toBe(1_000);
  });
});
