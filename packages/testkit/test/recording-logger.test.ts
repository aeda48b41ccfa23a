import { describe, expect, it } from 'vitest';
import { recordingLogger } from '../src/index.js';

describe('recordingLogger', () => {
  it('keeps every line in order, with its level and fields ({} when none)', () => {
    const logger = recordingLogger();
    logger.debug('starting');
    logger.info('connected', { host: 'a' });
    logger.warn('slow', { ms: 120 });
    logger.error('lost');
    expect(logger.entries).toEqual([
      { level: 'debug', message: 'starting', fields: {} },
      { level: 'info', message: 'connected', fields: { host: 'a' } },
      { level: 'warn', message: 'slow', fields: { ms: 120 } },
      { level: 'error', message: 'lost', fields: {} },
    ]);
  });

  it('filters by level: messages, entries and message-and-fields lines', () => {
    const logger = recordingLogger();
    logger.info('up');
    logger.warn('retrying', { attempt: 2, reason: 'ECONNRESET' });
    logger.error('gave up');
    logger.warn('slow');
    expect(logger.messages('warn')).toEqual(['retrying', 'slow']);
    expect(logger.messages('warn', 'error')).toEqual(['retrying', 'gave up', 'slow']);
    expect(logger.messages()).toEqual(['up', 'retrying', 'gave up', 'slow']);
    expect(logger.messages('debug')).toEqual([]);
    expect(logger.entriesAt('error')).toEqual([{ level: 'error', message: 'gave up', fields: {} }]);
    expect(logger.lines('warn')).toEqual(['retrying {"attempt":2,"reason":"ECONNRESET"}', 'slow {}']);
  });

  it('records through detached methods (an options parser may copy them), and the filters are snapshots', () => {
    const logger = recordingLogger();
    const { warn } = logger;
    const copy = { ...logger };
    warn('detached');
    copy.warn('copied');
    const before = logger.messages('warn');
    logger.warn('later');
    expect(before).toEqual(['detached', 'copied']);
    expect(logger.messages('warn')).toEqual(['detached', 'copied', 'later']);
    expect(logger.entries).toHaveLength(3);
  });
});
