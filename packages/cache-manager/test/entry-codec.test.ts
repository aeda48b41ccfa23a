import zlib from 'node:zlib';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { EntryCodec } from '../src/index.js';
import { SharedStructures } from '../src/serialization/shared-structures.js';

const leaf = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
  fc.boolean(),
  fc.constant(null),
  fc.date({ noInvalidDate: true }),
  fc.bigInt(),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  fc.uint8Array({ maxLength: 8 }),
  fc.int32Array({ maxLength: 8 }),
  fc.float64Array({ maxLength: 4 }),
  fc.bigInt64Array({ maxLength: 4 }),
);

const key = fc.string().filter((k) => k !== '__proto__');

const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object'), tie('map'), tie('set')),
  array: fc.array(tie('node'), { maxLength: 5 }),
  object: fc.dictionary(key, tie('node'), { maxKeys: 5 }),
  map: fc
    .array(fc.tuple(fc.oneof(fc.string(), fc.integer()), tie('node')), { maxLength: 4 })
    .map((pairs) => new Map(pairs)),
  set: fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 4 }).map((items) => new Set(items)),
})).node;

const codecs = [
  ['msgpack, no compression', new EntryCodec('msgpack', 'none', 0)],
  ['msgpack, zstd from 0 bytes', new EntryCodec('msgpack', 'zstd', 0)],
  ['msgpack, brotli from 0 bytes', new EntryCodec('msgpack', 'brotli', 0)],
  ['json, gzip from 0 bytes', new EntryCodec('json', 'gzip', 0)],
] as const;

describe.each(codecs)('entry codec (%s)', (_name, codec) => {
  it('round-trips values with Dates, Maps, Sets, Buffers and BigInt', () => {
    // A separate decoder proves nothing leaks between encoder and decoder state.
    const decoder = new EntryCodec('msgpack', 'none', 0);
    fc.assert(
      fc.property(value, fc.array(fc.string(), { maxLength: 3 }), (v, tags) => {
        const entry = { value: v, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 3.5, tags };
        const decoded = decoder.decode(codec.encode(entry));
        expect(decoded).toEqual(entry);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps entries without expiry as Infinity', () => {
    const entry = {
      value: 'v',
      createdAt: 1,
      expiresAt: Number.POSITIVE_INFINITY,
      staleUntil: Number.POSITIVE_INFINITY,
      computeMs: 0,
      tags: [],
    };
    expect(codec.decode(codec.encode(entry))).toEqual(entry);
  });
});

/** The entry the golden wire-format tests encode (a fresh copy each time). */
function goldenEntry() {
  return {
    value: {
      id: 7,
      name: 'Ada',
      at: new Date(0),
      tags: new Set(['a']),
      n: 10n,
      items: [
        { a: 1, b: 'x' },
        { a: 2, b: 'y' },
      ],
    },
    createdAt: 1,
    expiresAt: 10,
    staleUntil: 20,
    computeMs: 3.5,
    tags: ['t'],
  };
}

describe('entry codec', () => {
  it('compresses only above the threshold and only when it helps', () => {
    const codec = new EntryCodec('msgpack', 'zstd', 1_024);
    const small = {
      value: 'x'.repeat(100),
      createdAt: 0,
      expiresAt: 1,
      staleUntil: 1,
      computeMs: 0,
      tags: [],
    };
    const large = { ...small, value: 'x'.repeat(10_000) };
    expect(codec.encode(small)[0]! & 0b111).toBe(0);
    expect(codec.encode(large)[0]! & 0b111).toBe(3);
    expect(codec.encode(large).length).toBeLessThan(200);
  });

  it('keeps NaN, ±Infinity and invalid Dates with msgpack; JSON loses them as the README says', () => {
    const values = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, new Date(Number.NaN), -0];
    const roundTrip = (codec: EntryCodec) =>
      values.map((value) => {
        const entry = { value, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 0, tags: [] };
        return codec.decode(codec.encode(entry)).value;
      });
    const [nan, infinity, minusInfinity, invalidDate, minusZero] = roundTrip(
      new EntryCodec('msgpack', 'none', 0),
    );
    expect(nan).toBeNaN();
    expect([infinity, minusInfinity]).toEqual([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    expect(Number.isNaN((invalidDate as Date).getTime())).toBe(true);
    expect(Object.is(minusZero, 0)).toBe(true);
    const json = roundTrip(new EntryCodec('json', 'none', 0));
    expect(json.slice(0, 3)).toEqual([null, null, null]);
    expect((json[3] as Date).getTime()).toBe(0);
    expect(Object.is(json[4], 0)).toBe(true);
  });

  it('json keeps typed arrays and undefined array elements as msgpack does, and refuses symbols', () => {
    const value = {
      ints: new Int32Array([1, -2]),
      floats: new Float64Array([0.5, -1]),
      bytes: new Uint8Array([7, 8, 9]),
      bigs: new BigInt64Array([-3n]),
      list: [1, undefined, [undefined, 2], { inner: [undefined] }],
    };
    const entry = { value, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 0, tags: [] };
    for (const serializer of ['msgpack', 'json'] as const) {
      const codec = new EntryCodec(serializer, 'none', 0);
      // Strict: the same classes, and no holes where the value had undefined.
      expect(codec.decode(codec.encode(entry)).value).toStrictEqual(value);
      expect(() => codec.encode({ ...entry, value: { id: Symbol('id') } })).toThrow(
        expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }),
      );
    }
  });

  it('msgpack changes lone surrogates, __proto__ keys and shared references, as the README says', () => {
    const shared = { n: 1 };
    const value = { cut: 'ab\uD83D', parsed: JSON.parse('{"__proto__": {"x": 1}}'), twice: [shared, shared] };
    const entry = { value, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 0, tags: [] };
    const msgpack = new EntryCodec('msgpack', 'none', 0);
    const decoded = msgpack.decode(msgpack.encode(entry)).value as {
      cut: string;
      parsed: Record<string, unknown>;
      twice: object[];
    };
    expect(decoded.cut).not.toBe(value.cut);
    expect(decoded.cut.startsWith('ab\uFFFD')).toBe(true);
    expect(Object.keys(decoded.parsed)).toEqual(['__proto_']);
    expect(Object.getPrototypeOf(decoded.parsed)).toBe(Object.prototype);
    expect(decoded.twice[0]).toEqual(decoded.twice[1]);
    expect(decoded.twice[0]).not.toBe(decoded.twice[1]);
    // JSON keeps the first two.
    const json = new EntryCodec('json', 'none', 0);
    const fromJson = json.decode(json.encode(entry)).value as typeof decoded;
    expect(fromJson.cut).toBe(value.cut);
    expect(Object.keys(fromJson.parsed)).toEqual(['__proto__']);
  });

  it('a class instance with toJSON is stored as what it returns, by either serializer; a plain object’s own toJSON function is refused by msgpack', () => {
    class Money {
      constructor(readonly cents: number) {}
      toJSON(): string {
        return `${this.cents}c`;
      }
    }
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
      length(): number {
        return Math.hypot(this.x, this.y);
      }
    }
    const entry = (value: unknown) => ({
      value,
      createdAt: 1,
      expiresAt: 10,
      staleUntil: 20,
      computeMs: 0,
      tags: [],
    });
    const own = { a: 1, toJSON: () => 'replaced' };
    for (const serializer of ['msgpack', 'json'] as const) {
      const codec = new EntryCodec(serializer, 'none', 0);
      const decoded = codec.decode(codec.encode(entry({ price: new Money(5), at: new Point(3, 4) }))).value;
      expect(decoded).toStrictEqual({ price: '5c', at: { x: 3, y: 4 } });
    }
    const json = new EntryCodec('json', 'none', 0);
    expect(json.decode(json.encode(entry(own))).value).toBe('replaced');
    const msgpack = new EntryCodec('msgpack', 'none', 0);
    expect(() => msgpack.encode(entry(own))).toThrow(
      expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }),
    );
  });

  it('drops an array’s named properties and symbol-keyed properties, with either serializer', () => {
    const value = { rows: Object.assign([1, 2], { total: 40 }), [Symbol('marker')]: 'm', n: 1 };
    for (const serializer of ['msgpack', 'json'] as const) {
      const codec = new EntryCodec(serializer, 'none', 0);
      const entry = { value, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 0, tags: [] };
      const decoded = codec.decode(codec.encode(entry)).value as { rows: number[]; n: number };
      expect(decoded).toStrictEqual({ rows: [1, 2], n: 1 });
    }
  });

  it('msgpack keeps an Error’s class, message and cause, not its other fields', () => {
    const codec = new EntryCodec('msgpack', 'none', 0);
    const error = Object.assign(new TypeError('boom', { cause: 'upstream' }), { code: 'E_UPSTREAM' });
    const entry = { value: error, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 0, tags: [] };
    const decoded = codec.decode(codec.encode(entry)).value as TypeError & { code?: string };
    expect(decoded).toBeInstanceOf(TypeError);
    expect([decoded.message, decoded.cause, decoded.code]).toEqual(['boom', 'upstream', undefined]);
  });

  it('a Node without zstd reads a zstd value as undecodable (a miss), and gzip values as ever', () => {
    const written = new EntryCodec('msgpack', 'zstd', 0);
    const gzip = new EntryCodec('msgpack', 'gzip', 0);
    const entry = {
      value: 'x'.repeat(1_000),
      createdAt: 1,
      expiresAt: 10,
      staleUntil: 20,
      computeMs: 0,
      tags: [],
    };
    const zstdBytes = written.encode(entry);
    const gzipBytes = gzip.encode(entry);
    const node = zlib as { zstdDecompressSync?: unknown };
    const zstd = node.zstdDecompressSync;
    node.zstdDecompressSync = undefined; // as on Node 22.12–22.14, which the engines field allows
    try {
      const reader = new EntryCodec('msgpack', 'gzip', 0);
      expect(() => reader.decode(zstdBytes)).toThrow(
        expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }),
      );
      expect(reader.decode(gzipBytes)).toEqual(entry);
    } finally {
      node.zstdDecompressSync = zstd;
    }
  });

  it('rejects garbage with a typed error', () => {
    const codec = new EntryCodec('msgpack', 'none', 0);
    expect(() => codec.decode(Buffer.from([0xff, 1, 2]))).toThrow(
      expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }),
    );
  });

  it('rejects well-formed bytes that do not hold an entry (another app, corruption) with a typed error', () => {
    const codec = new EntryCodec('msgpack', 'none', 0);
    const frames = [
      [1, 0, -1, -1, 0, 5], // tags not a list
      [1, 0, -1, -1, 0, { a: 1 }],
      [1, 0, -1, -1, 0, [7]], // a tag not a string
      [1, 'a', 'b', 'c', 'd', []], // timings not numbers
      [1, null, -1, -1, 0, []],
      'abcdef',
      5,
      [1],
    ];
    for (const frame of frames) {
      const bytes = Buffer.concat([Buffer.from([0x10]), pack(frame)]);
      expect(() => codec.decode(bytes)).toThrow(expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }));
      const json = Buffer.concat([Buffer.from([0x18]), Buffer.from(JSON.stringify(frame))]);
      expect(() => codec.decode(json)).toThrow(expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }));
    }
  });

  it('decodes bytes written by earlier versions (the wire format is stable)', () => {
    // Written by the first release's encoder (msgpack, and json + gzip); any change to the
    // format must bump FORMAT_VERSION in the header byte instead of breaking these.
    const written = [
      'EJbUckCWomlkpG5hbWWiYXSkdGFnc6FupWl0ZW1zB6NBZGHW/wAAAADUcwCRoWHTAAAAAAAAAAqS1HJBkqFhoWIBoXhBAqF5AQoUy0AMAAAAAAAAkaF0',
      'GR+LCAAAAAAAAANNybEKwjAUQNF/uTg+JKmI8Da/I2R4JaFkaBwSRCn5d6F16Hg4YaMk9CFUWzPKMxmCdXTjUl+GkqxnhDfqhtBtaadsuR8XMOIQ6innspT6f7xjCKXntaFhw1AvzCgfhuyeDn8ZcYgX72RycrveJdCJ8Qdo4h9OrQAAAA==',
    ];
    const expected = goldenEntry();
    const codec = new EntryCodec('msgpack', 'none', 0);
    for (const base64 of written) expect(codec.decode(Buffer.from(base64, 'base64'))).toEqual(expected);
    expect(codec.encode(expected).toString('base64')).toBe(written[0]);
  });

  it('carries the id of the write that stored a value; a value of the previous release has none', () => {
    const codec = new EntryCodec('msgpack', 'none', 0);
    const written = { ...goldenEntry(), writeId: 2 ** 52 + 12_345 };
    expect(codec.decode(codec.encode(written)).writeId).toBe(written.writeId);
    const json = new EntryCodec('json', 'gzip', 0);
    expect(json.decode(json.encode(written)).writeId).toBe(written.writeId);
    // The previous release wrote six fields and reads only those: the id is a seventh.
    expect(codec.decode(codec.encode(goldenEntry())).writeId).toBeUndefined();
    const body = unpack(codec.encode(written).subarray(1)) as unknown[];
    expect(body).toHaveLength(7);
    expect(body[6]).toBe(written.writeId);
  });

  it('decodes format 4 (shared structures with a fingerprint) as written by this release', async () => {
    // Epoch 0x12345678 and two shared structures; any change to format 4 must bump the version.
    const list = [
      '305419896',
      JSON.stringify(['a', 'b']),
      JSON.stringify(['id', 'name', 'at', 'tags', 'n', 'items']),
    ];
    const store = { loadStructures: async () => list, appendStructures: async () => list };
    const structures = new SharedStructures(store, (error) => {
      throw error;
    });
    await structures.load();
    const codec = new EntryCodec('msgpack', 'none', 0, structures);
    const written =
      'QBI0VngCgWBys/I/zC6WQQejQWRh1v8AAAAA1HMAkaFh0wAAAAAAAAAKkkABoXhAAqF5AQoUy0AMAAAAAAAAkaF0';
    const expected = goldenEntry();
    expect(codec.encode(expected).toString('base64')).toBe(written);
    expect(codec.decode(Buffer.from(written, 'base64'))).toEqual(expected);
    // A codec without the structures cannot read it: a typed error (a miss), not garbage.
    expect(() => new EntryCodec('msgpack', 'none', 0).decode(Buffer.from(written, 'base64'))).toThrow(
      expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }),
    );
    // Nor can one whose list has another shape at one of the ids the value uses.
    const other = [list[0]!, list[1]!, JSON.stringify(['id', 'name', 'at', 'tags', 'n', 'other'])];
    const otherStructures = new SharedStructures(
      { loadStructures: async () => other, appendStructures: async () => other },
      (error) => {
        throw error;
      },
    );
    await otherStructures.load();
    expect(() =>
      new EntryCodec('msgpack', 'none', 0, otherStructures).decode(Buffer.from(written, 'base64')),
    ).toThrow(expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }));
    // Format 2 (the same value, epoch and count, no fingerprint) is no longer read: a miss.
    const format2 = 'IBI0VngClkEHo0FkYdb/AAAAANRzAJGhYdMAAAAAAAAACpJAAaF4QAKheQEKFMtADAAAAAAAAJGhdA==';
    expect(() => codec.decode(Buffer.from(format2, 'base64'))).toThrow(
      expect.objectContaining({ code: 'NOA_CACHE_SERIALIZATION' }),
    );
  });

  it('returns buffers that later encodes do not overwrite', () => {
    // Encoded buffers are views into the serializer's output block: keep many, then check them.
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 200 }), (values) => {
        const codec = new EntryCodec('msgpack', 'zstd', 64);
        const entries = values.map((v, index) => ({
          value: [v, 'x'.repeat(index * 7)],
          createdAt: index,
          expiresAt: 10,
          staleUntil: 20,
          computeMs: 0,
          tags: [],
        }));
        const encoded = entries.map((entry) => codec.encode(entry));
        expect(encoded.map((bytes) => codec.decode(bytes))).toEqual(entries);
      }),
      { numRuns: 30 },
    );
  });
});

describe('entry codec with shared structures (format 4)', () => {
  it('round-trips values with Dates, Maps, Sets, Buffers and BigInt between instances', async () => {
    // The Lua scripts' semantics over an array; the real list is tested in test/integration.
    const list: string[] = [];
    const store = {
      loadStructures: async (epoch: string) => {
        if (list.length === 0) list.push(epoch);
        return [...list];
      },
      appendStructures: async (expected: number, max: number, items: readonly string[]) => {
        if (list.length === expected) list.push(...items.slice(0, max - expected));
        return [...list];
      },
    };
    const fail = (error: unknown) => {
      throw error;
    };
    const [writer, reader] = [new SharedStructures(store, fail), new SharedStructures(store, fail)];
    await writer.load();
    const encoder = new EntryCodec('msgpack', 'zstd', 64, writer);
    const decoder = new EntryCodec('msgpack', 'none', 0, reader);
    const record = fc.record({ id: fc.integer(), name: fc.string(), at: fc.date({ noInvalidDate: true }) });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(value, fc.array(record, { maxLength: 5 })),
        fc.array(fc.string()),
        async (v, tags) => {
          const entry = { value: v, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 3.5, tags };
          const bytes = Buffer.from(encoder.encode(entry));
          await writer.settled();
          await decoder.prepare(bytes);
          expect(decoder.decode(bytes)).toEqual(entry);
        },
      ),
      { numRuns: 200 },
    );
    expect(list.length).toBeGreaterThan(1); // the record shape was shared along the way
  });
});
