import { describe, expect, it } from 'vitest';
import { commandStat } from '../src/index.js';

/** A node whose `INFO commandstats` says `text` (the parsing only; the integration tests read real servers). */
const node = (text: string) => ({ info: async () => text }) as unknown as Parameters<typeof commandStat>[0];

const info = [
  '# Commandstats',
  'cmdstat_ping:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0',
  'cmdstat_sadd:calls=4,usec=9,usec_per_call=2.25,rejected_calls=3,failed_calls=1',
  'cmdstat_client|setname:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0',
].join('\r\n');

describe('commandStat', () => {
  it('reads calls, rejected and failed of one command, and zeros for a command never called', async () => {
    expect(await commandStat(node(info), 'ping')).toEqual({ calls: 12, rejected: 0, failed: 0 });
    expect(await commandStat(node(info), 'sadd')).toEqual({ calls: 4, rejected: 3, failed: 1 });
    expect(await commandStat(node(info), 'set')).toEqual({ calls: 0, rejected: 0, failed: 0 });
  });

  it('does not take a command for another whose name it begins', async () => {
    expect(await commandStat(node(info), 'client')).toEqual({ calls: 0, rejected: 0, failed: 0 });
    expect(await commandStat(node(info), 'client\\|setname')).toEqual({ calls: 2, rejected: 0, failed: 0 });
  });
});
