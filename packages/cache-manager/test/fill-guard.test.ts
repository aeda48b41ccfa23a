import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FillGuard } from '../src/fill-guard.js';

describe('FillGuard', () => {
  it('lets a read fill when no change overlapped it, anywhere', () => {
    const guard = new FillGuard();
    guard.changedKey('a');
    const since = guard.epoch;
    expect(guard.mayFill('a', [], since)).toBe(true);
  });

  it('refuses a fill of a key changed during the read, by name, tag or prefix; others fill', () => {
    const guard = new FillGuard();
    const since = guard.epoch;
    guard.changedKey('k1');
    guard.changedTags(['t1']);
    guard.changedPrefix(':ns:');
    expect(guard.mayFill('k1', [], since)).toBe(false);
    expect(guard.mayFill('k2', ['t1'], since)).toBe(false);
    expect(guard.mayFill(':ns::k3', [], since)).toBe(false);
    expect(guard.mayFill('k2', ['t2'], since)).toBe(true);
    expect(guard.mayFill(':other::k3', [], since)).toBe(true);
    // A read started after the changes fills.
    expect(guard.mayFill('k1', ['t1'], guard.epoch)).toBe(true);
    // The root clear reaches every key.
    const beforeClear = guard.epoch;
    guard.changedPrefix('');
    expect(guard.mayFill('anything', [], beforeClear)).toBe(false);
  });

  it('once it forgets the changes by name, a read older than that and overlapping any change fills nothing', () => {
    const guard = new FillGuard();
    const old = guard.epoch;
    guard.changedKey('other');
    const recent = guard.epoch;
    for (let index = 0; index < 5_000; index += 1) guard.changedKey(`bulk:${index}`);
    // `old` overlapped 'other' and more than were remembered: no fill, whatever the key.
    expect(guard.mayFill('untouched', [], old)).toBe(false);
    expect(guard.mayFill('untouched', [], recent)).toBe(false);
    // A read started since the reset is judged by name again.
    const since = guard.epoch;
    guard.changedKey('bulk:x');
    expect(guard.mayFill('untouched', [], since)).toBe(true);
    expect(guard.mayFill('bulk:x', [], since)).toBe(false);
  });
});

describe('FillGuard with write ids (a set announces the id of the value it wrote)', () => {
  it('lets a read fill when every change of its key during the read announced the value it read', () => {
    const guard = new FillGuard();
    const since = guard.epoch;
    guard.changedKey('k', 7);
    expect(guard.mayFill('k', [], since, 7)).toBe(true);
    // The same write announced twice (a message published again) is still that one write.
    guard.changedKey('k', 7);
    expect(guard.mayFill('k', [], since, 7)).toBe(true);
  });

  it('refuses it when the read holds another write, or no id, or the change had none', () => {
    const guard = new FillGuard();
    const since = guard.epoch;
    guard.changedKey('k', 7);
    expect(guard.mayFill('k', [], since, 6)).toBe(false);
    expect(guard.mayFill('k', [], since)).toBe(false);
    guard.changedKey('d');
    expect(guard.mayFill('d', [], since, 7)).toBe(false);
  });

  it('refuses it when another change of the key came during the read, in either order', () => {
    // Messages of two writes may arrive in another order than the writes landed: matching the
    // last one announced does not prove the read is newer than the first.
    const guard = new FillGuard();
    const since = guard.epoch;
    guard.changedKey('k', 1);
    guard.changedKey('k', 2);
    expect(guard.mayFill('k', [], since, 2)).toBe(false);
    expect(guard.mayFill('k', [], since, 1)).toBe(false);
    // A read that started between the two overlapped only the second.
    const guard2 = new FillGuard();
    guard2.changedKey('k', 1);
    const between = guard2.epoch;
    guard2.changedKey('k', 2);
    expect(guard2.mayFill('k', [], between, 2)).toBe(true);
    // A delete between two announcements of one write breaks the run.
    const guard3 = new FillGuard();
    const start = guard3.epoch;
    guard3.changedKey('k', 3);
    guard3.changedKey('k');
    guard3.changedKey('k', 3);
    expect(guard3.mayFill('k', [], start, 3)).toBe(false);
  });

  it('still refuses it for a change by tag or prefix, whatever the id', () => {
    const guard = new FillGuard();
    const since = guard.epoch;
    guard.changedKey('k', 7);
    guard.changedTags(['t']);
    expect(guard.mayFill('k', ['t'], since, 7)).toBe(false);
    guard.changedPrefix('');
    expect(guard.mayFill('k', [], since, 7)).toBe(false);
  });
});

describe('FillGuard with write ids, against a model', () => {
  it('a read fills iff every change of its key since it started announced the write it read', () => {
    const change = fc.record({
      key: fc.constantFrom('a', 'b'),
      writeId: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(change, { maxLength: 12 }),
        fc.nat(12),
        fc.constantFrom('a', 'b'),
        fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
        (changes, startAt, key, readId) => {
          const guard = new FillGuard();
          const start = Math.min(startAt, changes.length);
          let since = guard.epoch;
          changes.forEach((item, index) => {
            if (index === start) since = guard.epoch;
            guard.changedKey(item.key, item.writeId);
          });
          if (start === changes.length) since = guard.epoch;
          const overlapped = changes.slice(start).filter((item) => item.key === key);
          const expected =
            overlapped.length === 0 ||
            (readId !== undefined && overlapped.every((item) => item.writeId === readId));
          expect(guard.mayFill(key, [], since, readId)).toBe(expected);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
