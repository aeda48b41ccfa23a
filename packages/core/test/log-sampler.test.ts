import { describe, expect, it } from 'vitest';
import { ConfigError, type Logger, LogSampler, ManualClock } from '../src/index.js';

function recordingLogger(): {
  logger: Logger;
  lines: [string, string, Record<string, unknown> | undefined][];
} {
  const lines: [string, string, Record<string, unknown> | undefined][] = [];
  const at =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      lines.push([level, message, fields]);
    };
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

describe('LogSampler', () => {
  it('writes one line per interval and tells the next line how many were held back', () => {
    const clock = new ManualClock(0);
    const sampler = new LogSampler({ intervalMs: 1_000, clock });
    const { logger, lines } = recordingLogger();
    const written: boolean[] = [];
    for (let index = 0; index < 500; index += 1) {
      written.push(sampler.log(logger, 'warn', 'store call failed', { index }));
      clock.advance(3);
    }
    // 1,500 ms: a line at 0 and one at 1,002 (the first call at or past 1,000 ms).
    expect(written.filter(Boolean)).toHaveLength(2);
    expect(lines).toEqual([
      ['warn', 'store call failed', { index: 0 }],
      ['warn', 'store call failed', { index: 334, suppressed: 333 }],
    ]);
    expect(sampler.suppressed).toBe(165);
  });

  it('reset() returns the count held back and lets the next line out at once', () => {
    const clock = new ManualClock(0);
    const sampler = new LogSampler({ intervalMs: 10_000, clock });
    const { logger, lines } = recordingLogger();
    for (let index = 0; index < 5; index += 1) sampler.log(logger, 'error', 'down');
    expect(sampler.reset()).toBe(4);
    expect(sampler.log(logger, 'error', 'down again')).toBe(true);
    expect(lines.map(([, message, fields]) => [message, fields])).toEqual([
      ['down', undefined],
      ['down again', undefined],
    ]);
  });

  it('refuses a bad interval with a ConfigError naming it', () => {
    expect(() => new LogSampler({ intervalMs: 0 })).toThrow(ConfigError);
    expect(() => new LogSampler({ intervalMs: 0 })).toThrow(/intervalMs/);
  });
});
