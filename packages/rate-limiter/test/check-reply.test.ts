import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replyValues } from '../src/stores/lua-script.js';

// check.lua's one-key short form replies its nine numbers as one string ('%d %d …'): ioredis 6's
// RESP decoder costs the client about as much per integer of a reply as per whole string.

describe('replyValues (the one-key reply string)', () => {
  it("reads the short form's nine integers, negative ones (NEVER is -1) included", () => {
    expect(replyValues('1765040000123 1 0 1 999999876 59877 -1 0 0')).toEqual([
      1765040000123, 1, 0, 1, 999999876, 59877, -1, 0, 0,
    ]);
    expect(replyValues('17 0')).toEqual([17, 0]);
  });

  it('reads any list of safe integers as Lua writes them with %d', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), {
          minLength: 1,
          maxLength: 12,
        }),
        (values) => {
          expect(replyValues(values.map((value) => value.toFixed(0)).join(' '))).toEqual(
            values.map((value) => (value === 0 ? 0 : value)),
          );
        },
      ),
    );
  });

  it('refuses anything else: undefined, so the store throws its unexpected-reply error', () => {
    for (const text of [
      '',
      ' ',
      '1  2',
      '1 ',
      ' 1',
      '-',
      '1 -',
      '--1',
      '1-2',
      '1.5 2',
      'OK',
      '1e3 1',
      '+1 2',
    ])
      expect(replyValues(text), text).toBeUndefined();
  });
});
