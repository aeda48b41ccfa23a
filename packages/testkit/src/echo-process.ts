import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

/** A child process that sends back what it is sent: a reply that arrives as I/O. */
export interface EchoProcess {
  /** Sends `text`; resolves with the child's next reply (the same text). */
  request(text: string): Promise<string>;
  /** Stops the child. */
  close(): void;
}

/**
 * Starts an {@link EchoProcess}. For deadline tests: its reply comes in through a pipe while this
 * process is busy ({@link busyFor}), the way a server's reply sits in a socket while a process is
 * busy past a call's deadline. Resolves once the child has answered a first request.
 */
export async function startEchoProcess(): Promise<EchoProcess> {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['-e', 'process.stdin.on("data", (chunk) => process.stdout.write(chunk))'],
    { stdio: 'pipe' },
  );
  const echo: EchoProcess = {
    request: (text) =>
      new Promise<string>((resolve, reject) => {
        const exited = () => reject(new Error('the echo process exited'));
        child.once('exit', exited);
        child.stdout.once('data', (chunk: Buffer) => {
          child.off('exit', exited);
          resolve(chunk.toString());
        });
        child.stdin.write(text);
      }),
    close: () => {
      child.kill();
    },
  };
  await echo.request('ready');
  return echo;
}

/** Keeps this process busy (no timer, no I/O read) for `ms`. */
export function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Busy on purpose.
  }
}
