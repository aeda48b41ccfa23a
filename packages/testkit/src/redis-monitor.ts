import { connect, type Socket } from 'node:net';

/** One command a Redis server ran, as its `MONITOR` reports it. */
export interface MonitoredCommand {
  /** The server's clock when it ran the command, in seconds (`1796585382.883860`). */
  readonly time: string;
  /** The database number. */
  readonly db: number;
  /** The client that sent it (`127.0.0.1:43566`, `lua`, `unix:…`). */
  readonly source: string;
  /** The command's name and arguments, unescaped (`['set', 'k', 'v', 'NX']`). */
  readonly args: readonly string[];
}

/** A `MONITOR` connection: every command the server runs from the moment {@link monitorRedis} resolved. */
export interface RedisMonitor {
  /** Calls `listener` with each command from now on. */
  on(listener: (command: MonitoredCommand) => void): void;
  /** Closes the connection (idempotent). */
  stop(): void;
}

/**
 * Opens a raw `MONITOR` connection to `target` (a host and port, or a `redis://` URL, whose
 * password is sent with `AUTH`) and resolves once the server has confirmed it.
 *
 * Not ioredis's `monitor()`: that one enters its monitoring mode a microtask after MONITOR's
 * `+OK`, so a monitored line that arrives in the same read (any live traffic) is taken for the
 * reply of a command never sent ("Command queue state error", and its `monitor()` rejects; seen
 * in CI 2026-12-06 with ioredis 6.1.0; reported upstream with 5.3.2 in taskforcesh/bullmq#2505, and
 * ioredis#1981 is open on the message). Here every line after `+OK` is a monitored command.
 */
export async function monitorRedis(target: { host: string; port: number } | string): Promise<RedisMonitor> {
  const url = typeof target === 'string' ? new URL(target) : undefined;
  const host = url ? url.hostname : (target as { host: string }).host;
  const port = url ? Number(url.port) || 6379 : (target as { port: number }).port;
  const socket: Socket = connect({ host, port });
  socket.setNoDelay(true);
  const listeners: ((command: MonitoredCommand) => void)[] = [];
  let pending = '';
  let confirmations = url?.password ? 2 : 1;
  let settle: ((error?: Error) => void) | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    settle = (error) => {
      settle = undefined;
      if (error) reject(error);
      else resolve();
    };
  });
  socket.on('error', (error) => {
    settle?.(error);
  });
  socket.on('close', () => settle?.(new Error(`MONITOR connection to ${host}:${port} closed before +OK`)));
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    for (let end = pending.indexOf('\r\n'); end !== -1; end = pending.indexOf('\r\n')) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 2);
      if (confirmations > 0) {
        if (line.startsWith('-')) {
          settle?.(new Error(`MONITOR refused by ${host}:${port}: ${line.slice(1)}`));
          socket.destroy();
          return;
        }
        confirmations -= 1;
        if (confirmations === 0) settle?.();
        continue;
      }
      const command = parseMonitorLine(line);
      if (command) for (const listener of listeners) listener(command);
    }
  });
  const auth = url?.password
    ? resp(
        url.username
          ? ['AUTH', decodeURIComponent(url.username), decodeURIComponent(url.password)]
          : ['AUTH', decodeURIComponent(url.password)],
      )
    : '';
  socket.write(`${auth}${resp(['MONITOR'])}`);
  await ready;
  return {
    on: (listener) => {
      listeners.push(listener);
    },
    stop: () => {
      socket.destroy();
    },
  };
}

/** A command in RESP (an array of bulk strings). */
function resp(args: string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
}

const escapes: Record<string, string> = {
  n: '\n',
  r: '\r',
  t: '\t',
  a: '\x07',
  b: '\b',
  '"': '"',
  '\\': '\\',
};

/**
 * Parses one `MONITOR` line, `+<time> [<db> <source>] "<arg>" "<arg>"…`, whose arguments are
 * quoted as Redis's `sdscatrepr` does (`\"`, `\\`, `\n`, `\xNN`…). `undefined` for any other line.
 */
export function parseMonitorLine(line: string): MonitoredCommand | undefined {
  const header = /^\+(\d+\.\d+) \[(\d+) ([^\]]*)\] /.exec(line);
  if (!header) return undefined;
  const args: string[] = [];
  let at = header[0].length;
  while (at < line.length) {
    if (line[at] !== '"') return undefined;
    at += 1;
    let arg = '';
    while (at < line.length && line[at] !== '"') {
      if (line[at] === '\\') {
        const next = line[at + 1] ?? '';
        if (next === 'x') {
          arg += String.fromCharCode(Number.parseInt(line.slice(at + 2, at + 4), 16));
          at += 4;
        } else {
          arg += escapes[next] ?? next;
          at += 2;
        }
      } else {
        arg += line[at];
        at += 1;
      }
    }
    if (line[at] !== '"') return undefined;
    args.push(arg);
    at += 2; // the closing quote and the space before the next argument
  }
  return { time: header[1]!, db: Number(header[2]), source: header[3]!, args };
}
