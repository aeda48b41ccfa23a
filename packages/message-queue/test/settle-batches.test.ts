import { describe, expect, it } from 'vitest';
import { cutText } from '../src/error-history.js';
import type { JobRecord } from '../src/job-record.js';
import type { Settlement } from '../src/provider.js';
import {
  ArgumentLimit,
  fitFailure,
  isReplyError,
  minArgumentBytes,
  packSettlements,
  type SettleEntry,
  type SettleEntryBuilder,
} from '../src/providers/settle-batches.js';

const complete = (id: string, size: number): SettleEntry => ({ id, l: 'lease', k: 'c', r: 'x'.repeat(size) });
const fail = (id: string, size: number): SettleEntry => ({ id, l: 'lease', k: 'f', rec: 'y'.repeat(size) });

describe('packSettlements', () => {
  it('sends the whole array as one argument when it fits', () => {
    const entries = [complete('a', 10), fail('b', 10)];
    expect(packSettlements(entries, 1_000)).toEqual({ batches: [JSON.stringify(entries)], oversized: [] });
    expect(packSettlements([], 10)).toEqual({ batches: ['[]'], oversized: [] });
  });

  it('splits entries that fit one by one into arrays under the limit, in order', () => {
    const entries = [complete('a', 400), complete('b', 400), fail('c', 400), complete('d', 10)];
    const { batches, oversized } = packSettlements(entries, 1_000);
    expect(oversized).toEqual([]);
    for (const batch of batches) expect(Buffer.byteLength(batch)).toBeLessThanOrEqual(1_000);
    expect(batches.flatMap((batch) => JSON.parse(batch))).toEqual(entries);
    expect(batches.length).toBeGreaterThan(1);
  });

  it('leaves out a completion over the limit alone, counting UTF-8 bytes; never a failure', () => {
    const wide: SettleEntry = { id: 'w', l: 'lease', k: 'c', r: 'é'.repeat(400) }; // 800 bytes, 400 units
    const entries = [complete('a', 10), wide, fail('big', 2_000)];
    const { batches, oversized } = packSettlements(entries, 600);
    expect(oversized).toEqual([{ id: 'w', bytes: Buffer.byteLength(JSON.stringify(wide)), maxBytes: 600 }]);
    expect(batches.flatMap((batch) => JSON.parse(batch))).toEqual([entries[0], entries[2]]);
  });

  it('takes only entries the scripts read: a kind of c or f, a failure with its record (checked by tsc)', () => {
    // @ts-expect-error an unknown kind: the scripts would settle nothing
    packSettlements([{ id: 'a', l: 'lease', k: 'x' }], 10);
    // @ts-expect-error a failure without the record to store
    packSettlements([{ id: 'a', l: 'lease', k: 'f' }], 10);
    // @ts-expect-error a completion's result is JSON text, not a value
    packSettlements([{ id: 'a', l: 'lease', k: 'c', r: { n: 1 } }], 10);
  });

  it('gives one empty array when every entry is left out (the exchange still fetches)', () => {
    expect(packSettlements([complete('a', 2_000)], 1_000).batches).toEqual(['[]']);
  });
});

describe('fitFailure: a failure whose entry is over the limit', () => {
  const record = (errors: number, message: string, pad: number): JobRecord => ({
    id: 'j',
    name: 'n',
    data: 'd'.repeat(pad),
    priority: 0,
    attempts: 30,
    backoff: { type: 'fixed', delayMs: 0 },
    removeOnComplete: false,
    attemptsMade: errors,
    errors: Array.from({ length: errors }, (_, index) => ({
      attempt: index + 1,
      name: 'Error',
      message,
      at: 1,
    })),
    createdAt: 1,
    availableAt: 1,
  });
  const build: SettleEntryBuilder = (_settlement, stored) => ({
    id: stored.id,
    l: 'lease',
    k: 'f',
    rec: JSON.stringify(stored),
    err: JSON.stringify(stored.errors.at(-1)),
  });
  const fitted = (settlement: Settlement, maxBytes: number) => {
    const entry = fitFailure(settlement, build(settlement, settlement.record), build, maxBytes);
    return {
      bytes: Buffer.byteLength(JSON.stringify(entry)),
      stored: JSON.parse((entry as { rec: string }).rec) as JobRecord,
    };
  };

  it('is left as it is when it fits', () => {
    const settlement: Settlement = { kind: 'fail', record: record(3, 'boom', 10), retryAt: 5 };
    expect(fitFailure(settlement, build(settlement, settlement.record), build, 10_000)).toEqual(
      build(settlement, settlement.record),
    );
  });

  it('cuts every message first, with a marker, keeping the whole history', () => {
    const message = '😀'.repeat(8_192);
    const settlement: Settlement = { kind: 'fail', record: record(5, message, 100_000), retryAt: 5 };
    const { bytes, stored } = fitted(settlement, 200_000);
    expect(bytes + 2).toBeLessThanOrEqual(200_000);
    expect(stored.errors).toHaveLength(5);
    expect(stored.errors[0]!.message).toBe(`${'😀'.repeat(512)}… (truncated from 16384 characters)`);
    expect(stored.data).toBe('d'.repeat(100_000));
  });

  it('then keeps the newest entry only, then its marker only; over even then (the data), it is sent as cut', () => {
    const settlement: Settlement = {
      kind: 'fail',
      record: record(20, 'e'.repeat(16_384), 100_000),
      retryAt: 5,
    };
    const newestOnly = fitted(settlement, 100_000 + 4_000);
    expect(newestOnly.stored.errors.map((entry) => entry.attempt)).toEqual([20]);
    const markerOnly = fitted(settlement, 100_000 + 1_000);
    expect(markerOnly.stored.errors).toEqual([
      { attempt: 20, name: 'Error', message: '… (truncated from 16384 characters)', at: 1 },
    ]);
    expect(fitted(settlement, 50_000).stored.errors).toEqual(markerOnly.stored.errors);
  });
});

describe('cutText', () => {
  it('keeps a text that fits, cuts a longer one outside a surrogate pair, and keeps the first length when cut again', () => {
    expect(cutText('abc', 3)).toBe('abc');
    expect(cutText('ab😀', 3)).toBe('ab… (truncated from 4 characters)');
    const once = cutText('x'.repeat(100), 50);
    expect(cutText(once, 10)).toBe(`${'x'.repeat(10)}… (truncated from 100 characters)`);
    expect(cutText(once, 0)).toBe('… (truncated from 100 characters)');
  });
});

describe('ArgumentLimit', () => {
  it('asks the server nothing for an argument that surely fits, and reads the limit once otherwise', async () => {
    let asked = 0;
    const redis = {
      config: async () => {
        asked += 1;
        return ['proto-max-bulk-len', '2097152'];
      },
    };
    const limit = new ArgumentLimit(redis as never, undefined);
    expect(await limit.for(100)).toBe(minArgumentBytes);
    expect(asked).toBe(0);
    expect(await limit.for(minArgumentBytes)).toBe(2_097_152);
    expect(await limit.for(10)).toBe(2_097_152);
    expect(asked).toBe(1);
  });

  it("assumes Redis's default where CONFIG is refused, and retries after a connection error", async () => {
    const refused = Object.assign(new Error("ERR unknown command 'CONFIG'"), { name: 'ReplyError' });
    const limit = new ArgumentLimit({ config: async () => Promise.reject(refused) } as never, undefined);
    expect(await limit.for(minArgumentBytes)).toBe(512 * 1024 * 1024);
    let calls = 0;
    const flaky = new ArgumentLimit(
      {
        config: async () => {
          calls += 1;
          if (calls === 1) throw new Error('Connection is closed.');
          return ['proto-max-bulk-len', '1048576'];
        },
      } as never,
      undefined,
    );
    await expect(flaky.for(minArgumentBytes)).rejects.toThrow(/closed/);
    expect(await flaky.for(minArgumentBytes)).toBe(1_048_576);
    expect(await new ArgumentLimit({} as never, 5_000_000).for(minArgumentBytes)).toBe(5_000_000);
  });

  it('tells error replies of any ReplyError subclass (ioredis 6: SimpleError, BlobError), whatever their name, from lost connections', async () => {
    class ReplyError extends Error {
      override name = 'ReplyError';
    }
    class SimpleError extends ReplyError {
      override name = 'SimpleError';
    }
    expect(isReplyError(new SimpleError('NOPERM'))).toBe(true);
    expect(isReplyError(new ReplyError('ERR'))).toBe(true);
    expect(isReplyError(new Error('Connection is closed.'))).toBe(false);
    expect(isReplyError(undefined)).toBe(false);
    const refused = new ArgumentLimit(
      { config: async () => Promise.reject(new SimpleError('NOPERM')) } as never,
      undefined,
    );
    expect(await refused.for(minArgumentBytes)).toBe(512 * 1024 * 1024);
  });
});
