import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Asks the kernel for a free loopback TCP port. */
export function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until a TCP connect to `port` succeeds, or throws after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 15_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
}

/** The kernel's ephemeral port range (what `listen(0)` and outgoing connections are given); Linux's default when unreadable. */
export function ephemeralPortRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low! > 1_024) return { low: low!, high: high! };
  } catch {
    // Not Linux, or no /proc: the default below.
  }
  return { low: 32_768, high: 60_999 };
}

/** Whether a listener can bind `port` on loopback now. */
export function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** Ports this process handed out, so that two servers of one test file never get the same. */
const handedOut = new Set<number>();

/**
 * A free loopback port below the kernel's ephemeral range, for a server a test stops and starts
 * again on the same port: while it is down, no `listen(0)` (`sparePort()`, a test's HTTP server)
 * nor outgoing connection of another test can be given it. CI once saw all four cases of a
 * RabbitMQ health test time out: a node restarted on a port from `sparePort()` finds it taken,
 * its start looked done (the port answered) and the test waited for a broker never there.
 */
export async function restartablePort(): Promise<number> {
  const { low } = ephemeralPortRange();
  const floor = 10_000;
  const ceiling = Math.max(floor + 1_000, low);
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = floor + Math.floor(Math.random() * (ceiling - floor));
    if (handedOut.has(port)) continue;
    // Taken before the check, so a concurrent call cannot pick it meanwhile.
    handedOut.add(port);
    if (await portFree(port)) return port;
    handedOut.delete(port);
  }
  throw new Error(`no free port in [${floor}, ${ceiling}) after 200 tries`);
}
