import { describe, expect, it } from 'vitest';
import { serviceUrl, skipReason } from '../../src/index.js';
import { smokeLine } from './smoke.js';

// No Consul on this repo's machines (not packaged for Debian 12): skip with the reason printed.
const reason = await skipReason('consul', 'Consul');

describe.skipIf(reason !== undefined)('Consul smoke', () => {
  it('has a leader and round-trips a KV entry', async () => {
    const url = serviceUrl('consul');
    // The leader is the raft address of a server, e.g. "172.17.0.2:8300".
    const leader = await (await fetch(new URL('/v1/status/leader', url))).json();
    expect(leader).toMatch(/^[\w.:[\]-]+:\d+$/);
    const key = `noa-smoke/${process.pid}-${Date.now()}`;
    await fetch(new URL(`/v1/kv/${key}`, url), { method: 'PUT', body: 'hello consul' });
    expect(await (await fetch(new URL(`/v1/kv/${key}?raw`, url))).text()).toBe('hello consul');
    await fetch(new URL(`/v1/kv/${key}`, url), { method: 'DELETE' });
    smokeLine('consul', 'agent', url);
  });
});
