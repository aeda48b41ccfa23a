import { describe, expect, it } from 'vitest';
import { FactoryRuns } from '../src/factory-runs.js';

describe('FactoryRuns', () => {
  it('a run started while the bus is not subscribed is suspect from its start; a wait is not', () => {
    let busDown = false;
    const runs = new FactoryRuns(() => busDown);
    expect(runs.start('k', []).suspect).toBe(false);
    busDown = true;
    expect(runs.start('k', []).suspect).toBe(true);
    expect(runs.start('k', [], 'wait').suspect).toBe(false);
    busDown = false;
    expect(runs.start('k', []).suspect).toBe(false);
  });

  it('a run in progress when the connection closes is suspect; a wait only from the resync', () => {
    const runs = new FactoryRuns();
    const run = runs.start('k', []);
    const wait = runs.start('k', [], 'wait');
    runs.connectionLost();
    expect([run.suspect, wait.suspect]).toEqual([true, false]);
    runs.suspectAll();
    expect(wait.suspect).toBe(true);
  });
});
