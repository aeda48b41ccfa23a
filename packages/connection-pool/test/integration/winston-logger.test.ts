import { PassThrough } from 'node:stream';
import { isReachable, serviceUrl } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import winston from 'winston';
import { createPgPool } from '../../src/pg.js';
import { waitFor } from './helpers/wait.js';

const url = serviceUrl('postgres');
const skip = (await isReachable('postgres')) ? undefined : `skipped: no Postgres at ${url}`;
if (skip) console.log(skip);

/** A real winston logger (JSON lines at `level` and above) and the lines it wrote, parsed. */
function winstonLogger(level: string): { logger: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line));
  });
  const logger = winston.createLogger({
    level,
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, lines };
}

// README "Metrics" (Logs) and @noa/core's Logger doc: "A winston logger fits as is": passed as the
// `logger` option, its lines carry the message and the pool's fields as winston metadata.
describe.skipIf(skip !== undefined)('a winston logger as the logger option (shared Postgres)', () => {
  it('gets leaks (with the acquire stack), connect failures and replicas leaving rotation, with their fields', async () => {
    const { logger, lines } = winstonLogger('info');
    const db = createPgPool({
      name: 'winston',
      primary: url,
      replicas: ['postgres://noa:noa@127.0.0.1:1/noa'], // nothing listens on port 1
      healthCheckIntervalMs: 50,
      pool: { leakDetectionThresholdMs: 50, evictionIntervalMs: 20 },
      logger,
    });
    const client = await db.connect();
    try {
      await waitFor(() =>
        [
          'connection held longer than the leak threshold',
          'replica left rotation',
          'could not open a connection',
        ].every((message) => lines.some((line) => line.message === message)),
      );
    } finally {
      client.release();
      await db.close();
    }
    const leak = lines.find((line) => line.message === 'connection held longer than the leak threshold')!;
    expect(leak).toMatchObject({ level: 'warn', component: 'connection-pool', pool: 'winston:primary' });
    expect(leak.thresholdMs).toBe(50);
    expect(String(leak.acquireStack)).toContain('winston-logger.test.ts');
    const left = lines.find((line) => line.message === 'replica left rotation')!;
    expect(left).toMatchObject({ level: 'warn', pool: 'winston', replica: 'replica0', reason: 'down' });
    const refused = lines.find((line) => line.message === 'could not open a connection')!;
    expect(refused).toMatchObject({ level: 'warn', pool: 'winston:replica0' });
    expect(String(refused.error)).toContain('ECONNREFUSED');
    // winston's level applies: the pool's debug lines (a broken connection, a failed health
    // check) are not written at 'info'.
    expect(lines.filter((line) => line.level === 'debug')).toEqual([]);
  });

  it("writes the pool's debug lines when winston's level lets them through (transaction retries)", async () => {
    const { logger, lines } = winstonLogger('debug');
    const db = createPgPool({ name: 'winston-debug', primary: url, logger });
    try {
      let attempts = 0;
      await db.withTransaction(async (tx) => {
        attempts += 1;
        if (attempts === 1) {
          // A serialization failure, as Postgres reports it: the code is what retryOn matches.
          await tx.query("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$");
        }
      });
      expect(attempts).toBe(2);
    } finally {
      await db.close();
    }
    const retry = lines.find((line) => line.message === 'retrying transaction');
    expect(retry).toMatchObject({ level: 'debug', pool: 'winston-debug', attempt: 1 });
  });
});
