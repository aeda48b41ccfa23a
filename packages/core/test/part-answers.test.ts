import { describe, expect, it } from 'vitest';
import { PartAnswers, PartFailure, partAnswerWindowMs, unlessPartFailure } from '../src/index.js';

// What a breaker in front of a backend whose parts fail apart counts (a fake clock: pure logic).
describe('PartAnswers', () => {
  function parts(closed = true) {
    let now = 10_000;
    const state = { closed };
    const answers = new PartAnswers(
      () => now,
      () => state.closed,
    );
    return { answers, state, advance: (ms: number) => (now += ms) };
  }

  it('a failure within the window after another answer is a PartFailure; after it, the failure itself', async () => {
    const { answers, advance } = parts();
    await expect(answers.counted(Promise.reject(new Error('first')))).rejects.toThrow('first');
    expect(await answers.counted(Promise.resolve('ok'))).toBe('ok');
    advance(partAnswerWindowMs - 1);
    const outcome = await answers.counted(Promise.reject(new Error('one master')));
    expect(outcome).toBeInstanceOf(PartFailure);
    expect(() => unlessPartFailure(outcome)).toThrow('one master');
    advance(1);
    await expect(answers.counted(Promise.reject(new Error('every master')))).rejects.toThrow('every master');
  });

  it('counts every failure while the breaker is not closed', async () => {
    const { answers, state } = parts();
    answers.answered();
    expect(answers.otherPartAnswered()).toBe(true);
    state.closed = false;
    expect(answers.otherPartAnswered()).toBe(false);
    await expect(answers.counted(Promise.reject(new Error('trial')))).rejects.toThrow('trial');
  });

  it('unlessPartFailure passes a value through', () => {
    expect(unlessPartFailure(42)).toBe(42);
  });
});
