import type { Cluster } from 'ioredis';
import { Command } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ClusterCommands, neverSent } from '../src/stores/unsent-command.js';

/**
 * A Cluster client standing in for an ioredis whose write path differs from 5.x: `write` is what
 * it does with a command before refusing it the way a node whose connection closed does.
 */
function clusterThat(write: (command: Command) => void): Cluster {
  return {
    options: {},
    sendCommand(command: Command) {
      write(command);
      command.reject(new Error('Connection is closed.'));
      return command.promise;
    },
  } as unknown as Cluster;
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('the call was refused'),
    (error: unknown) => error,
  );
}

describe('ClusterCommands', () => {
  it('counts a command written to a socket it was not told of as sent (never resent)', async () => {
    // An ioredis that serialises without naming the socket: the command was written, may have run.
    const commands = ClusterCommands.of(clusterThat((command) => command.toWritable(undefined as never)))!;
    const error = await failureOf(commands.send('evalsha', 'sha', ['{k}'], [1]));
    expect((error as Error).message).toBe('Connection is closed.');
    expect(neverSent(error)).toBe(false);
  });

  it('counts a command never serialised as unsent', async () => {
    const commands = ClusterCommands.of(clusterThat(() => {}))!;
    expect(neverSent(await failureOf(commands.send('evalsha', 'sha', ['{k}'], [1])))).toBe(true);
  });

  it('counts a command whose socket is still open as unsent, and one whose socket closed as sent', async () => {
    const open = ClusterCommands.of(clusterThat((command) => command.toWritable({ destroyed: false })))!;
    expect(neverSent(await failureOf(open.send('fcall', 'f', ['{k}'], [])))).toBe(true);
    const closed = ClusterCommands.of(clusterThat((command) => command.toWritable({ destroyed: true })))!;
    expect(neverSent(await failureOf(closed.send('fcall', 'f', ['{k}'], [])))).toBe(false);
  });

  it('tells apart two commands that one closing connection fails with the same error object', async () => {
    // ioredis's flushQueue rejects a node's offline queue (never written) and its command queue
    // (written, may have run) with one Error instance.
    const closed = new Error('Connection is closed.');
    const queued: Command[] = [];
    const client = {
      options: {},
      sendCommand(command: Command) {
        queued.push(command);
        return command.promise;
      },
    } as unknown as Cluster;
    const commands = ClusterCommands.of(client)!;
    const unwritten = failureOf(commands.send('evalsha', 'sha', ['{k}'], [1]));
    const written = failureOf(commands.send('evalsha', 'sha', ['{k}'], [1]));
    queued[1]!.toWritable({ destroyed: true });
    for (const command of queued) command.reject(closed);
    expect(neverSent(await unwritten)).toBe(true);
    expect(neverSent(await written)).toBe(false);
  });

  it('is not made for an ioredis whose Command has no toWritable (calls go through the client, unresent)', () => {
    // Its writes could not be seen: every refusal would look unsent, including written ones.
    class Serialising extends Command {}
    Object.defineProperty(Serialising.prototype, 'toWritable', { value: undefined });
    const client = clusterThat(() => {});
    expect(ClusterCommands.of(client, Serialising)).toBeUndefined();
    expect(ClusterCommands.of(client)).toBeDefined();
  });
});
