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
