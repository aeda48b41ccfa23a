import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startTcpProxy } from '../src/tcp-proxy.js';

/** A TCP server on a free port that records what each connection sends and can write to it. */
async function recordingServer() {
  const received: string[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (chunk) => received.push(chunk.toString()));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return { port, received, sockets, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('TcpProxy.holdClientFrom', () => {
  it("passes the server's messages and holds what the client sends from the matching chunk; a sever loses it", async () => {
    const server = await recordingServer();
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: server.port });
    try {
      const client = net.connect(proxy.port, '127.0.0.1');
      client.on('error', () => {});
      const got: string[] = [];
      client.on('data', (chunk) => got.push(chunk.toString()));
      client.write('hello');
      await until(() => server.received.join('') === 'hello');
      proxy.holdClientFrom((chunk) => chunk.includes('ACK'));
      client.write('still passes');
      await until(() => server.received.join('').endsWith('still passes'));
      client.write('ACK 1');
      server.sockets[0]!.write('message');
      await until(() => got.join('') === 'message');
      client.write('after the ack');
      // The server's message arrived after the hold began; the client's ack and what followed did not.
      const closed = new Promise((resolve) => server.sockets[0]!.on('close', resolve));
      proxy.sever();
      await closed;
      proxy.thaw();
      proxy.mend();
      expect(server.received.join('')).toBe('hellostill passes');
      // A new connection passes both ways again.
      const again = net.connect(proxy.port, '127.0.0.1');
      again.write('ACK 2');
      await until(() => server.received.join('').endsWith('ACK 2'));
      again.destroy();
      client.destroy();
    } finally {
      await proxy.close();
      await server.close();
    }
  });
});
