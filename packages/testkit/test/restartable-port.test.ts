import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralPortRange, portFree, restartablePort } from '../src/ports.js';

describe('restartablePort', () => {
  it('gives free ports below the ephemeral range, never the same one twice in a process', async () => {
    const { low } = ephemeralPortRange();
    const ports = await Promise.all(Array.from({ length: 20 }, () => restartablePort()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(low);
    }
    expect(new Set(ports).size).toBe(ports.length);
  });
});

describe('portFree', () => {
  it('is false while another listener holds the port, true once it is gone', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
    const { port } = holder.address() as net.AddressInfo;
    expect(await portFree(port)).toBe(false);
    await new Promise((resolve) => holder.close(resolve));
    expect(await portFree(port)).toBe(true);
  });
});
