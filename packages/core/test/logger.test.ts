import { describe, expect, it, vi } from 'vitest';
import { childLogger, type Logger } from '../src/index.js';

describe('childLogger over a logger that throws', () => {
  // Packages log from timers and request paths through childLogger: a failing log transport must
  // neither crash the process (a throw in a timer) nor fail the operation being logged.
  it('does not throw, and reports the failure once as a process warning', () => {
    const failing = new Error('transport closed');
    const throwing: Logger = {
      debug: () => {
        throw failing;
      },
      info: () => {
        throw failing;
      },
      warn: () => {
        throw failing;
      },
      error: () => {
        throw failing;
      },
    };
    const emitWarning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const logger = childLogger(throwing, { component: 'demo' });
      expect(() => {
        logger.debug('a');
        logger.info('b');
        logger.warn('c', { key: 'k' });
        logger.error('d');
      }).not.toThrow();
      expect(emitWarning).toHaveBeenCalledTimes(1);
    } finally {
      emitWarning.mockRestore();
    }
  });

  it('passes each line with its fields to the logger', () => {
    const lines: unknown[][] = [];
    const record: Logger = {
      debug: (...args) => lines.push(['debug', ...args]),
      info: (...args) => lines.push(['info', ...args]),
      warn: (...args) => lines.push(['warn', ...args]),
      error: (...args) => lines.push(['error', ...args]),
    };
    const logger = childLogger(record, { component: 'demo' });
    logger.warn('slow', { key: 'k', component: 'override' });
    logger.info('up');
    expect(lines).toEqual([
      ['warn', 'slow', { component: 'override', key: 'k' }],
      ['info', 'up', { component: 'demo' }],
    ]);
  });
});
