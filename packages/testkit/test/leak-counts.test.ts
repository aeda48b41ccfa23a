import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { activeResources, activeTimers, listenerCounts, liveObjects } from '../src/index.js';

class Tracked {}

describe('leak counters', () => {
  it('listenerCounts counts per event and leaves out events with none', () => {
    const emitter = new EventEmitter();
    const noop = () => {};
    emitter.on('close', noop);
    emitter.on('close', () => {});
    emitter.once('error', noop);
    emitter.on('gone', noop);
    emitter.off('gone', noop);
    expect(listenerCounts(emitter)).toEqual({ close: 2, error: 1 });
  });

  it('liveObjects counts instances still referenced after a full GC', () => {
    const before = liveObjects(Tracked);
    const kept = Array.from({ length: 5 }, () => new Tracked());
    expect(liveObjects(Tracked) - before).toBe(5);
    kept.length = 0;
    expect(liveObjects(Tracked)).toBe(before);
  });

  it('activeTimers and activeResources see a timer until it is cleared', () => {
    const before = activeTimers();
    const timer = setTimeout(() => {}, 60_000);
    expect(activeTimers()).toBe(before + 1);
    expect(activeResources().Timeout).toBe(before + 1);
    clearTimeout(timer);
    expect(activeTimers()).toBe(before);
  });
});
