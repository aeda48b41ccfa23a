import { describe, expect, it } from 'vitest';
import { RunningJob, RunningJobs } from '../src/running-jobs.js';
import { jobRecord } from './helpers.js';

const record = (id: string) => jobRecord(id, 'x');

describe('RunningJob', () => {
  it('makes its signal on first read and aborts it with the reason', () => {
    const running = new RunningJob(record('a'), 0);
    const signal = running.signal;
    expect(running.signal).toBe(signal);
    const reason = new Error('stop');
    running.abort(reason);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
  });

  it('a signal first read after the abort is already aborted with the reason', () => {
    const running = new RunningJob(record('a'), 0);
    const reason = new Error('timeout');
    running.abort(reason);
    expect(running.signal.aborted).toBe(true);
    expect(running.signal.reason).toBe(reason);
  });
});

describe('RunningJobs', () => {
  it('adds, finds by id, lists and deletes tries, reusing slots', () => {
    const table = new RunningJobs();
    const [a, b, a2] = [
      new RunningJob(record('a'), 0),
      new RunningJob(record('b'), 0),
      new RunningJob(record('a'), 0),
    ];
    table.add(a);
    table.add(b);
    table.add(a2);
    expect(table.size).toBe(3);
    expect(table.byId('a')).toEqual([a, a2]);
    table.delete(a);
    table.delete(a);
    expect(table.size).toBe(2);
    expect(table.values()).toEqual([b, a2]);
    const c = new RunningJob(record('c'), 0);
    table.add(c);
    expect(c.slot).toBe(0);
    expect(table.values().map((running) => running.record.id)).toEqual(['c', 'b', 'a']);
  });
});
