import { describe, expect, it } from 'vitest';
import { parseMonitorLine } from '../src/index.js';

describe('parseMonitorLine', () => {
  it('reads the time, database, source and arguments of a monitored command', () => {
    expect(parseMonitorLine('+1796585382.883860 [0 127.0.0.1:43566] "hello" "3"')).toEqual({
      time: '1796585382.883860',
      db: 0,
      source: '127.0.0.1:43566',
      args: ['hello', '3'],
    });
  });

  it('unescapes quotes, backslashes, control characters and \\x bytes as Redis quotes them', () => {
    const line = String.raw`+1.5 [3 lua] "set" "a\"b" "c\\d" "e\r\nf" "\x00\xff" ""`;
    expect(parseMonitorLine(line)).toEqual({
      time: '1.5',
      db: 3,
      source: 'lua',
      args: ['set', 'a"b', 'c\\d', 'e\r\nf', '\x00\xff', ''],
    });
  });

  it('returns undefined for a line that is no monitored command', () => {
    expect(parseMonitorLine('+OK')).toBeUndefined();
    expect(parseMonitorLine('-ERR unknown command')).toBeUndefined();
    expect(parseMonitorLine('+1.5 [0 127.0.0.1:1] "unterminated')).toBeUndefined();
  });
});
