import { Packr, RESERVE_START_SPACE } from 'msgpackr';

/** Turns values into bytes and back. */
export interface ValueSerializer {
  readonly name: 'msgpack' | 'json';
  /**
   * Encodes `value` after `reserve` (0–255) leading bytes left for the caller (a header),
   * so the caller need not copy the body into a new buffer to prefix it.
   */
  encode(value: unknown, reserve?: number): Buffer;
  /** Decodes `bytes` from offset `start` to the end. */
  decode(bytes: Buffer, start: number): unknown;
}

/**
 * The msgpackr options of every encoder and decoder (part of the wire format). Not
 * `bundleStrings`: measured on the bench payloads (2026-12-05, one process, CPU time), it cut
 * the unpack of a ~100 KB value by ~14% but not of a 10 KB one (small: +25%), made every pack
 * ~15% slower (small: ~65%) and the bytes 6–13% larger. Readers decode bundled values whatever
 * their options (msgpackr's 0x62 extension), so it could be turned on later without a new
 * format, e.g. as an option for caches of large values.
 */
export const msgpackOptions = {
  moreTypes: true,
  useBigIntExtension: true,
  mapsAsObjects: false,
  /**
   * Decoding only (the bytes written are the same): a decoded Buffer is a copy, not a view into
   * the bytes it came in. Those are Redis's reply, often a whole MGET answer or a chunk of the
   * parser's pool, and a view would keep all of it alive in L1, which charges the value only
   * its own encoded length. Typed arrays other than Buffers are copied by msgpackr anyway.
   */
  copyBuffers: true,
  /**
   * Encoding only: msgpackr writes a function (top level, property, element) as `undefined` by
   * default, so a value holding one came back changed, and a function itself as a stored
   * `undefined` that every instance then served as a hit. Refused, as a symbol is.
   */
  writeFunction: refuseFunction,
} as const;

function refuseFunction(): never {
  throw new TypeError('a function cannot be stored');
}

/**
 * MessagePack via msgpackr with records (objects and Maps stay distinct, repeated object
 * shapes in arrays are written once), Dates, Maps, Sets, Buffers, typed arrays and BigInt of
 * any size. Record definitions travel inline, so any instance decodes any other's bytes.
 */
export function msgpackSerializer(): ValueSerializer {
  const packr = new Packr(msgpackOptions);
  return {
    name: 'msgpack',
    // The result is a view into msgpackr's current output block; later packs write after it,
    // never over it, so it stays valid (a new block is allocated when one is full).
    encode: (value, reserve = 0) =>
      reserve === 0 ? packr.pack(value) : packr.pack(value, RESERVE_START_SPACE | reserve),
    decode: (bytes, start) => (start === 0 ? packr.unpack(bytes) : packr.unpack(bytes, { start })),
  };
}

const TAG = '$noa';

/** The typed arrays the JSON serializer wraps, by constructor name (a Buffer has its own tag). */
const typedArrays = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
} as const;
type TypedArrayName = keyof typeof typedArrays;

function typedArrayName(value: unknown): TypedArrayName | undefined {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return undefined;
  const name = value.constructor.name;
  return Object.hasOwn(typedArrays, name) ? (name as TypedArrayName) : undefined;
}

/**
 * JSON, readable in redis-cli. Dates, Maps, Sets, BigInt, Buffers, typed arrays and `undefined`
 * array elements round-trip through `{"$noa": <type>, "v": …}` wrappers (so a user object whose
 * only keys are `$noa` and `v` would be misread: use msgpack for arbitrary data). A symbol or a
 * function is refused, as msgpack refuses them, rather than silently dropped.
 */
export function jsonSerializer(): ValueSerializer {
  function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
    const raw = this[key];
    if (raw instanceof Date) return { [TAG]: 'date', v: raw.getTime() };
    if (typeof raw === 'bigint') return { [TAG]: 'bigint', v: raw.toString() };
    if (raw instanceof Map) return { [TAG]: 'map', v: [...raw] };
    if (raw instanceof Set) return { [TAG]: 'set', v: [...raw] };
    if (Buffer.isBuffer(raw)) return { [TAG]: 'buffer', v: raw.toString('base64') };
    const typed = typedArrayName(raw);
    if (typed) {
      const view = raw as ArrayBufferView;
      return {
        [TAG]: 'typed',
        v: [typed, Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('base64')],
      };
    }
    if (typeof raw === 'symbol') throw new TypeError(`a symbol cannot be stored (at key "${key}")`);
    if (typeof raw === 'function') throw new TypeError(`a function cannot be stored (at key "${key}")`);
    if (raw === undefined && Array.isArray(this)) return { [TAG]: 'undefined', v: 0 };
    return value;
  }
  /**
   * `undefined` elements revived and not yet put back. A reviver that returns `undefined`
   * deletes the element, leaving a hole; every hole of a decoded array was an `undefined` (the
   * replacer wraps holes too), and an array is revived after its elements, so it fills its holes
   * while any are pending.
   */
  let pendingUndefined = 0;
  function reviver(_key: string, value: unknown): unknown {
    if (typeof value !== 'object' || value === null) return value;
    if (Array.isArray(value)) {
      if (pendingUndefined > 0) {
        for (let index = 0; index < value.length; index += 1) {
          if (index in value) continue;
          value[index] = undefined;
          pendingUndefined -= 1;
        }
      }
      return value;
    }
    const record = value as Record<string, unknown>;
    const type = record[TAG];
    if (typeof type !== 'string' || Object.keys(record).length !== 2 || !('v' in record)) return value;
    const inner = record.v;
    switch (type) {
      case 'date':
        return new Date(inner as number);
      case 'bigint':
        return BigInt(inner as string);
      case 'map':
        return new Map(inner as [unknown, unknown][]);
      case 'set':
        return new Set(inner as unknown[]);
      case 'buffer':
        return Buffer.from(inner as string, 'base64');
      case 'typed': {
        const [name, base64] = inner as [string, string];
        if (!Object.hasOwn(typedArrays, name)) return value;
        // A copy into a new ArrayBuffer of its own: aligned for any element size.
        const bytes = new Uint8Array(Buffer.from(base64, 'base64'));
        return new typedArrays[name as TypedArrayName](bytes.buffer);
      }
      case 'undefined':
        pendingUndefined += 1;
        return undefined;
      default:
        return value;
    }
  }
  return {
    name: 'json',
    encode: (value, reserve = 0) =>
      Buffer.from('\0'.repeat(reserve) + (JSON.stringify(value, replacer) ?? 'null')),
    decode: (bytes, start) => {
      pendingUndefined = 0;
      return JSON.parse(bytes.toString('utf8', start), reviver);
    },
  };
}
